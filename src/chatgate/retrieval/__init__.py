"""Retrieval for vector stores: text extraction from uploaded files, token-window chunking,
attribute filters, and hybrid search."""

from chatgate.retrieval.chunking import AUTO, Chunk, ChunkingStrategy, chunk_text
from chatgate.retrieval.documents import DocumentError, extract_text
from chatgate.retrieval.filters import matches
from chatgate.retrieval.search import Hit, Searcher

__all__ = [
    "AUTO",
    "Chunk",
    "ChunkingStrategy",
    "DocumentError",
    "Hit",
    "Searcher",
    "chunk_text",
    "extract_text",
    "matches",
]
