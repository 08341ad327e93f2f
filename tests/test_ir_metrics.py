"""The retrieval metrics on hand-computed rankings, and the labelled corpus in
bench/data/retrieval: it loads, its ids are unique, every label points at a passage."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from bench.ir_metrics import (
    KINDS,
    Passage,
    Query,
    dcg,
    load_corpus,
    load_queries,
    mrr,
    ndcg_at_k,
    recall_at_k,
)

LABELS = {"a": 2, "b": 1}


def test_perfect_ranking_scores_one() -> None:
    ranked = ["a", "b", "x", "y"]
    assert ndcg_at_k(ranked, LABELS) == pytest.approx(1.0)
    assert recall_at_k(ranked, LABELS, 10) == 1.0
    assert mrr(ranked, LABELS) == 1.0


def test_reversed_ranking() -> None:
    # DCG of [b, a] = (2**1 - 1)/log2(2) + (2**2 - 1)/log2(3) = 1 + 3/1.58496 = 2.89279
    # ideal [a, b] = 3/log2(2) + 1/log2(3) = 3 + 0.63093 = 3.63093; 2.89279 / 3.63093 = 0.79671
    expected = (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3))
    assert ndcg_at_k(["b", "a"], LABELS) == pytest.approx(expected)
    assert ndcg_at_k(["b", "a"], LABELS) == pytest.approx(0.796708, abs=1e-6)
    assert recall_at_k(["b", "a"], LABELS, 10) == 1.0
    assert mrr(["b", "a"], LABELS) == 1.0  # b is relevant too (grade 1)


def test_nothing_relevant_found_scores_zero() -> None:
    ranked = ["x", "y", "z"]
    assert ndcg_at_k(ranked, LABELS) == 0.0
    assert recall_at_k(ranked, LABELS, 10) == 0.0
    assert mrr(ranked, LABELS) == 0.0
    assert ndcg_at_k([], LABELS) == 0.0


def test_k_cuts_off_the_ranking() -> None:
    ranked = ["x", "y", "a"]
    assert ndcg_at_k(ranked, {"a": 2}, k=2) == 0.0
    # (2**2 - 1)/log2(4) over the ideal 3/log2(2)
    assert ndcg_at_k(ranked, {"a": 2}, k=3) == pytest.approx(0.5)
    assert recall_at_k(ranked, {"a": 2}, 2) == 0.0
    assert recall_at_k(ranked, {"a": 2}, 3) == 1.0
    assert mrr(ranked, {"a": 2}, k=2) == 0.0
    assert mrr(ranked, {"a": 2}, k=3) == pytest.approx(1 / 3)


def test_ideal_dcg_comes_from_the_labels_not_the_ranking() -> None:
    labels = {"a": 2, "b": 2, "c": 1}
    # only a is retrieved: DCG 3; the ideal ranking [a, b, c] = 3 + 3/log2(3) + 1/2
    expected = 3 / (3 + 3 / math.log2(3) + 0.5)
    assert ndcg_at_k(["a", "x"], labels) == pytest.approx(expected)
    assert recall_at_k(["a", "x"], labels, 10) == pytest.approx(1 / 3)
    # with k=1 the ideal is a single grade-2 hit, which a already is
    assert ndcg_at_k(["a", "x"], labels, k=1) == pytest.approx(1.0)


def test_grade_zero_duplicates_and_bad_k() -> None:
    assert recall_at_k(["a"], {"a": 2, "z": 0}, 10) == 1.0
    assert ndcg_at_k(["z"], {"z": 0}) == 0.0
    assert recall_at_k(["z"], {}, 10) == 0.0
    # a repeated hit counts once: [a, a, b] is [a, b], the perfect ranking
    assert ndcg_at_k(["a", "a", "b"], LABELS) == pytest.approx(1.0)
    assert recall_at_k(["a", "a", "b"], LABELS, 2) == 1.0
    assert dcg([2, 0, 1]) == pytest.approx(3 + 1 / 2)
    for metric in (ndcg_at_k, recall_at_k, mrr):
        with pytest.raises(ValueError, match="k must be"):
            metric(["a"], LABELS, 0)


def test_loaders_reject_malformed_records(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_text('{"id": "q1", "text": "t", "kind": "fuzzy", "relevant": {"d1": 2}}\n')
    with pytest.raises(ValueError, match="kind"):
        load_queries(path)
    path.write_text('{"id": "q1", "text": "t", "kind": "mixed", "relevant": {"d1": "2"}}\n')
    with pytest.raises(ValueError, match="integer grades"):
        load_queries(path)
    path.write_text('{"id": "d1", "title": "", "text": "t"}\n')
    with pytest.raises(ValueError, match="title"):
        load_corpus(path)


def test_corpus_and_queries_are_consistent() -> None:
    corpus = load_corpus()
    queries = load_queries()
    assert all(isinstance(p, Passage) for p in corpus)
    assert all(isinstance(q, Query) for q in queries)
    assert len(corpus) >= 140
    assert len(queries) >= 55

    passage_ids = [p.id for p in corpus]
    query_ids = [q.id for q in queries]
    assert len(set(passage_ids)) == len(passage_ids), "duplicate passage ids"
    assert len(set(query_ids)) == len(query_ids), "duplicate query ids"
    assert len({p.text for p in corpus}) == len(corpus), "duplicate passage texts"
    for passage in corpus:
        assert 40 <= len(passage.text.split()) <= 150, passage.id

    known = set(passage_ids)
    for query in queries:
        assert set(query.relevant) <= known, f"{query.id} labels a passage that does not exist"
        assert set(query.relevant.values()) <= {1, 2}, query.id
        assert 2 in query.relevant.values(), f"{query.id} has no passage that answers it"

    kinds = Counter(q.kind for q in queries)
    assert set(kinds) == set(KINDS)
    assert min(kinds.values()) >= len(queries) // 4, kinds
