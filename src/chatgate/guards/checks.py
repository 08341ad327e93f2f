"""A template's output checks on an answer: JSON-schema validity, length, and regular
expressions it must or must not match. ``OutputChecker.partial`` checks what can already fail
while a stream is running (``max_length``, ``must_not_match``); ``final`` checks everything."""

from __future__ import annotations

import re

import jsonschema
import orjson

from chatgate.guards.verdict import Verdict
from chatgate.protocol.prompts import OutputChecks

__all__ = ["OutputChecker"]


class OutputChecker:
    def __init__(self, checks: OutputChecks):
        self._checks = checks
        self._must = [re.compile(p) for p in checks.must_match]
        self._must_not = [re.compile(p) for p in checks.must_not_match]
        self._schema = (
            jsonschema.Draft202012Validator(checks.json_schema)
            if checks.json_schema is not None
            else None
        )

    def partial(self, text: str) -> Verdict:
        failed: list[str] = []
        limit = self._checks.max_length
        if limit is not None and len(text) > limit:
            failed.append("check/max_length")
        if any(p.search(text) for p in self._must_not):
            failed.append("check/must_not_match")
        return _verdict(failed)

    def final(self, text: str) -> Verdict:
        verdict = self.partial(text)
        failed = verdict.flagged_categories
        if self._checks.min_length is not None and len(text) < self._checks.min_length:
            failed.append("check/min_length")
        if not all(p.search(text) for p in self._must):
            failed.append("check/must_match")
        if self._schema is not None:
            try:
                document = orjson.loads(text)
            except orjson.JSONDecodeError:
                failed.append("check/json_schema")
            else:
                if not self._schema.is_valid(document):
                    failed.append("check/json_schema")
        return _verdict(failed)


def _verdict(failed: list[str]) -> Verdict:
    return Verdict("checks", dict.fromkeys(failed, 1.0), dict.fromkeys(failed, True))
