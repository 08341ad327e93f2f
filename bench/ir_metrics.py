"""Ranking metrics (nDCG@k, recall@k, reciprocal rank) and loaders for the labelled retrieval
corpus in ``bench/data/retrieval`` (see its README). Standard library only.

Every metric scores one query's ranking; average over queries for the benchmark figure (the mean
of ``mrr`` over queries is the MRR). A passage is relevant when its grade is >= 1; ids missing from
``relevant`` have grade 0. An id that appears more than once in a ranking counts at its first
position only, so a retriever cannot gain by repeating a hit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DATA = Path(__file__).parent / "data" / "retrieval"
CORPUS = DATA / "corpus.jsonl"
QUERIES = DATA / "queries.jsonl"

QueryKind = Literal["lexical", "semantic", "mixed"]
KINDS: tuple[QueryKind, ...] = ("lexical", "semantic", "mixed")


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Query:
    id: str
    text: str
    kind: QueryKind
    relevant: dict[str, int]  # passage id -> grade: 2 answers the query, 1 partly relevant


def _top_k(ranked_ids: Sequence[str], k: int) -> list[str]:
    """The first k distinct ids of the ranking."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    seen: set[str] = set()
    top: list[str] = []
    for doc_id in ranked_ids:
        if doc_id not in seen:
            seen.add(doc_id)
            top.append(doc_id)
            if len(top) == k:
                break
    return top


def _gain(grade: int) -> float:
    return float(2**grade - 1) if grade > 0 else 0.0


def dcg(grades: Sequence[int]) -> float:
    """Discounted cumulative gain of grades in rank order: sum of (2**g - 1) / log2(rank + 1)."""
    return sum(_gain(grade) / math.log2(rank + 2) for rank, grade in enumerate(grades))


def ndcg_at_k(ranked_ids: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """DCG of the top k divided by the DCG of the best possible top k built from the labels.

    0.0 when nothing in ``relevant`` has a grade >= 1.
    """
    top = _top_k(ranked_ids, k)
    ideal = dcg(sorted((g for g in relevant.values() if g > 0), reverse=True)[:k])
    if ideal == 0.0:
        return 0.0
    return dcg([relevant.get(doc_id, 0) for doc_id in top]) / ideal


def recall_at_k(ranked_ids: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Fraction of the passages with grade >= 1 that are in the top k (0.0 when there are none)."""
    top = _top_k(ranked_ids, k)
    wanted = {doc_id for doc_id, grade in relevant.items() if grade > 0}
    if not wanted:
        return 0.0
    return len(wanted.intersection(top)) / len(wanted)


def mrr(ranked_ids: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first passage with grade >= 1 in the top k, else 0.0.

    This is one query's score; the mean over queries is the mean reciprocal rank.
    """
    for rank, doc_id in enumerate(_top_k(ranked_ids, k), start=1):
        if relevant.get(doc_id, 0) > 0:
            return 1.0 / rank
    return 0.0


def _records(path: Path | str) -> Iterator[tuple[int, dict[str, object]]]:
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            yield number, record


def _text(record: Mapping[str, object], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {key!r} must be a non-empty string")
    return value


def load_corpus(path: Path | str = CORPUS) -> list[Passage]:
    """Passages of a JSON Lines file of {"id", "title", "text"}, in file order."""
    passages = []
    for number, record in _records(path):
        where = f"{path}:{number}"
        passages.append(
            Passage(
                id=_text(record, "id", where),
                title=_text(record, "title", where),
                text=_text(record, "text", where),
            )
        )
    return passages


def load_queries(path: Path | str = QUERIES) -> list[Query]:
    """Queries of a JSON Lines file of {"id", "text", "kind", "relevant": {passage id: grade}}."""
    queries = []
    for number, record in _records(path):
        where = f"{path}:{number}"
        kind = _text(record, "kind", where)
        if kind not in KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        relevant = record.get("relevant")
        if not isinstance(relevant, dict) or not all(
            isinstance(doc_id, str) and type(grade) is int for doc_id, grade in relevant.items()
        ):
            raise ValueError(f"{where}: 'relevant' must map passage ids to integer grades")
        queries.append(
            Query(
                id=_text(record, "id", where),
                text=_text(record, "text", where),
                kind=kind,
                relevant=dict(relevant),
            )
        )
    return queries
