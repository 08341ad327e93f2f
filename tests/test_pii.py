"""Personal data detection (each kind, with checksums keeping look-alikes out), one placeholder per
value, and placeholders restored from a stream however it is cut."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatgate.guards.moderation import RuleModerator
from chatgate.guards.pii import PiiDetector, Pseudonyms
from chatgate.guards.verdict import MODERATION_CATEGORIES

DETECTOR = PiiDetector()


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("email", "write to ada.lovelace@example.co.uk today"),
        ("phone", "call +1 415-555-2671 after five"),
        ("phone", "call (415) 555-2671 after five"),
        ("card", "card 4111 1111 1111 1111 exp 12/29"),
        ("card", "card 5500-0000-0000-0004"),
        ("iban", "IBAN DE89 3704 0044 0532 0130 00 please"),
        ("iban", "GB82WEST12345698765432"),
        ("national_id", "SSN 536-90-4399"),
        ("national_id", "NINO AB 12 34 56 C"),
        ("national_id", "DNI 12345678Z"),
        ("ip", "from 192.168.10.1 at noon"),
        ("ip", "from 2001:db8::ff00:42:8329 at noon"),
        ("url_credentials", "db at postgres://admin:hunter2@db.internal:5432/prod ok"),
        ("secret", "key sk-proj-abcdefghijklmnopqrstuvwxyz123456"),
        ("secret", "AKIAIOSFODNN7EXAMPLE is the access key"),
        ("secret", "token ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ12"),
        ("secret", "password = 'correct horse battery'"),
        ("secret", "api_key: 9f8e7d6c5b4a3210"),
    ],
)
def test_each_kind_is_found(kind: str, text: str) -> None:
    assert kind in [f.kind for f in DETECTOR.find(text)]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "order 1234567890123 shipped",
        "IBAN DE00 3704 0044 0532 0130 00 has a bad check",
        "SSN 000-12-3456 is not issued",
        "version 1.2.3.4.5 released on 2024-05-01",
        "it costs 42.50 and weighs 3.14 kg",
        "meeting at 10:30 in room 4",
        "ISBN 978-3-16-148410-0",
    ],
)
def test_look_alikes_are_not_found(text: str) -> None:
    assert DETECTOR.find(text) == []


def test_same_value_same_placeholder_and_restore() -> None:
    pseudonyms = Pseudonyms(DETECTOR)
    first = pseudonyms.replace("a@example.com, b@example.com")
    second = pseudonyms.replace("again a@example.com")
    assert first == "<EMAIL_1>, <EMAIL_2>" and second == "again <EMAIL_1>"
    assert pseudonyms.restore("<EMAIL_2> then <EMAIL_1> and <EMAIL_9>") == (
        "b@example.com then a@example.com and <EMAIL_9>"
    )


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_a_stream_cut_anywhere_restores_exactly(cuts: list[int]) -> None:
    pseudonyms = Pseudonyms(DETECTOR)
    masked = pseudonyms.replace("To a@example.com, cc b@example.com <x> and < EMAIL_1 >, ok")
    points = sorted({min(c, len(masked)) for c in cuts})
    pieces = [masked[i:j] for i, j in zip([0, *points], [*points, len(masked)], strict=True)]
    restorer = pseudonyms.restorer()
    out = "".join(restorer.feed(p) for p in pieces) + restorer.flush()
    assert out == pseudonyms.restore(masked)
    assert "a@example.com" in out and "b@example.com" in out


def _scores(path: Path) -> tuple[float, float, float]:
    moderator = RuleModerator()
    hits = wrong = missed = false_alarms = benign = 0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        got = set(moderator.classify(row["text"]).flagged_categories)
        want = set(row["categories"])
        assert got <= set(MODERATION_CATEGORIES)
        hits, wrong, missed = (
            hits + len(got & want),
            wrong + len(got - want),
            missed + len(want - got),
        )
        if not want:
            benign += 1
            false_alarms += bool(got)
    return hits / (hits + wrong), hits / (hits + missed), false_alarms / benign


def test_moderation_rules_on_the_held_out_set() -> None:
    """Measured on examples written after the rules were frozen (bench/guards.py reports both
    sets); these floors catch a rule change that breaks precision or the false-positive rate."""
    precision, recall, false_positive_rate = _scores(
        Path(__file__).parent / "data" / "moderation_heldout.jsonl"
    )
    assert precision >= 0.9
    assert recall >= 0.5
    assert false_positive_rate <= 0.05
