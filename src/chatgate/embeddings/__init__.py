"""The embedded sentence encoder: BERT weights run by ONNX Runtime (graph built without torch)."""

from chatgate.embeddings.encoder import EncodedBatch, SentenceEncoder, default_model_dir

__all__ = ["EncodedBatch", "SentenceEncoder", "default_model_dir"]
