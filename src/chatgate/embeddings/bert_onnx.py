"""A BERT sentence encoder as an ONNX graph, built from its safetensors weights without torch.

Sentence-transformers models such as all-MiniLM-L6-v2 ship as a Hugging Face ``BertModel``
(``config.json`` + ``model.safetensors``) plus a pooling config. Exporting them to ONNX
normally goes through torch; here the graph is written directly with ``onnx.helper`` from the
config, so the only runtime is ONNX Runtime. The graph computes what sentence-transformers
computes — embeddings, the encoder layers, mean pooling over the attention mask and (when the
model normalises) L2 normalisation — and ends in one ``[batch, hidden]`` float32 output.

Token type ids are always 0 for a single sentence, so their embedding row is folded into the
position table once, and the graph takes two inputs: ``input_ids`` and ``attention_mask``
(int64, ``[batch, sequence]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from onnx import TensorProto, helper, numpy_helper

OPSET = 18  # LayerNormalization (17) and reductions taking their axes as an input (18)


@dataclass(frozen=True, slots=True)
class BertShape:
    hidden: int
    heads: int
    layers: int
    max_positions: int
    layer_norm_eps: float

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BertShape:
        if config.get("model_type") != "bert" or config.get("hidden_act", "gelu") != "gelu":
            raise ValueError("only BERT models with GELU activations are supported")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        return cls(
            hidden=int(config["hidden_size"]),
            heads=int(config["num_attention_heads"]),
            layers=int(config["num_hidden_layers"]),
            max_positions=int(config["max_position_embeddings"]),
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
        )


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _linear(g: _Graph, x: str, weights: dict[str, np.ndarray], prefix: str) -> str:
    # torch's Linear stores [out, in]; MatMul wants [in, out]: transposed once, here.
    w = g.const(prefix + ".w", np.ascontiguousarray(weights[prefix + ".weight"].T))
    b = g.const(prefix + ".b", weights[prefix + ".bias"])
    return g.op("Add", [g.op("MatMul", [x, w]), b])


def _layer_norm(g: _Graph, x: str, weights: dict[str, np.ndarray], prefix: str, eps: float) -> str:
    scale = g.const(prefix + ".g", weights[prefix + ".weight"])
    bias = g.const(prefix + ".b", weights[prefix + ".bias"])
    return g.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=eps)


def _gelu(g: _Graph, x: str) -> str:
    # BERT's exact GELU: 0.5 * x * (1 + erf(x / sqrt(2))); ONNX Runtime fuses this pattern.
    inv_sqrt2 = g.const("inv_sqrt2", np.array(1 / math.sqrt(2), dtype=np.float32))
    one = g.const("one", np.array(1.0, dtype=np.float32))
    half = g.const("half", np.array(0.5, dtype=np.float32))
    erf = g.op("Erf", [g.op("Mul", [x, inv_sqrt2])])
    return g.op("Mul", [g.op("Mul", [x, half]), g.op("Add", [erf, one])])


def _embed_tokens(g: _Graph, weights: dict[str, np.ndarray], shape: BertShape) -> str:
    """Words + positions[:sequence] (+ token type 0, folded into the position table)."""
    positions = weights["embeddings.position_embeddings.weight"]
    positions = positions + weights["embeddings.token_type_embeddings.weight"][0]
    word_table = g.const("word_embeddings", weights["embeddings.word_embeddings.weight"])
    position_table = g.const("position_embeddings", positions.astype(np.float32))
    words = g.op("Gather", [word_table, "input_ids"], axis=0)
    ids_shape = g.op("Shape", ["input_ids"])
    seq_len = g.op("Slice", [ids_shape, g.const("i1", np.array([1])), g.const("i2", np.array([2]))])
    zero = g.const("zero", np.array([0]))
    pos = g.op("Slice", [position_table, zero, seq_len, zero])
    return _layer_norm(
        g, g.op("Add", [words, pos]), weights, "embeddings.LayerNorm", shape.layer_norm_eps
    )


def _encoder_layer(
    g: _Graph, x: str, mask_bias: str, weights: dict[str, np.ndarray], *, shape: BertShape, i: int
) -> str:
    p = f"encoder.layer.{i}"
    eps = shape.layer_norm_eps
    head_dim = shape.hidden // shape.heads
    split_heads = g.const("split", np.array([0, 0, shape.heads, head_dim]))
    merge_heads = g.const("merge", np.array([0, 0, shape.hidden]))
    scale = g.const("scale", np.array(1 / math.sqrt(head_dim), dtype=np.float32))
    q = g.op("Reshape", [_linear(g, x, weights, p + ".attention.self.query"), split_heads])
    k = g.op("Reshape", [_linear(g, x, weights, p + ".attention.self.key"), split_heads])
    v = g.op("Reshape", [_linear(g, x, weights, p + ".attention.self.value"), split_heads])
    q = g.op("Transpose", [g.op("Mul", [q, scale])], perm=[0, 2, 1, 3])
    k = g.op("Transpose", [k], perm=[0, 2, 3, 1])
    v = g.op("Transpose", [v], perm=[0, 2, 1, 3])
    scores = g.op("Add", [g.op("MatMul", [q, k]), mask_bias])
    probs = g.op("Softmax", [scores], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, merge_heads])
    attended = _linear(g, context, weights, p + ".attention.output.dense")
    x = _layer_norm(g, g.op("Add", [attended, x]), weights, p + ".attention.output.LayerNorm", eps)
    inner = _gelu(g, _linear(g, x, weights, p + ".intermediate.dense"))
    out = _linear(g, inner, weights, p + ".output.dense")
    return _layer_norm(g, g.op("Add", [out, x]), weights, p + ".output.LayerNorm", eps)


def _mean_pool(g: _Graph, x: str, mask_f: str, *, normalize: bool) -> str:
    mask3 = g.op("Unsqueeze", [mask_f, g.const("axis2", np.array([2]))])
    axis1 = g.const("axis1", np.array([1]))
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask3]), axis1], keepdims=0)
    counts = g.op("ReduceSum", [mask3, axis1], keepdims=0)
    tiny = g.const("tiny", np.array(1e-9, dtype=np.float32))
    pooled = g.op("Div", [summed, g.op("Max", [counts, tiny])])
    if normalize:
        axis_last = g.const("axis_last", np.array([-1]))
        norm = g.op("ReduceL2", [pooled, axis_last], keepdims=1)
        floor = g.const("floor", np.array(1e-12, dtype=np.float32))
        pooled = g.op("Div", [pooled, g.op("Max", [norm, floor])])
    return pooled


def build_graph(weights: dict[str, np.ndarray], shape: BertShape, *, normalize: bool) -> bytes:
    """The serialised ONNX model for these weights (see the module docstring)."""
    g = _Graph()
    x = _embed_tokens(g, weights, shape)
    # Additive attention mask [batch, 1, 1, sequence]: 0 where attended, the most negative
    # float on padding.
    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    one = g.const("one", np.array(1.0, dtype=np.float32))
    neg = g.const("neg", np.array(np.finfo(np.float32).min, dtype=np.float32))
    mask_bias = g.op("Mul", [g.op("Sub", [one, mask_f]), neg])
    mask_bias = g.op("Unsqueeze", [mask_bias, g.const("axes12", np.array([1, 2]))])
    for i in range(shape.layers):
        x = _encoder_layer(g, x, mask_bias, weights, shape=shape, i=i)
    pooled = _mean_pool(g, x, mask_f, normalize=normalize)
    g.nodes.append(helper.make_node("Identity", [pooled], ["sentence_embedding"]))
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])
    output = helper.make_tensor_value_info(
        "sentence_embedding", TensorProto.FLOAT, ["batch", shape.hidden]
    )
    graph = helper.make_graph(
        g.nodes, "sentence_encoder", [ids, mask], [output], initializer=g.initializers
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


@dataclass(frozen=True, slots=True)
class SentenceModelFiles:
    """What a sentence-transformers folder says about its model."""

    weights: Path
    tokenizer: Path
    shape: BertShape
    max_tokens: int
    normalize: bool
    pooling_mode_mean: bool

    @classmethod
    def from_dir(cls, folder: Path) -> SentenceModelFiles:
        config = orjson.loads((folder / "config.json").read_bytes())
        max_tokens = 512
        bert_config = folder / "sentence_bert_config.json"
        if bert_config.exists():
            max_tokens = int(orjson.loads(bert_config.read_bytes()).get("max_seq_length", 512))
        pooling_mean = True
        pooling = folder / "1_Pooling" / "config.json"
        if pooling.exists():
            pooling_mean = bool(orjson.loads(pooling.read_bytes()).get("pooling_mode_mean_tokens"))
        normalize = False
        modules = folder / "modules.json"
        if modules.exists():
            kinds = [m.get("type", "") for m in orjson.loads(modules.read_bytes())]
            normalize = any(kind.endswith("Normalize") for kind in kinds)
        return cls(
            weights=folder / "model.safetensors",
            tokenizer=folder / "tokenizer.json",
            shape=BertShape.from_config(config),
            max_tokens=min(max_tokens, int(config["max_position_embeddings"])),
            normalize=normalize,
            pooling_mode_mean=pooling_mean,
        )
