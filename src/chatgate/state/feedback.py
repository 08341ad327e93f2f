"""Feedback on answers (``POST /v1/feedback``), and the per-variant data of an experiment's
report: request outcomes from the request log, and the feedback that counts — from the key that
made the request (or an admin), the newest per request."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import select

from chatgate.state.db import Database
from chatgate.state.tables import FeedbackRow, RequestLogRow

__all__ = ["FeedbackStore", "VariantData"]

_MAX_ROWS = 200_000


@dataclass(slots=True)
class VariantData:
    requests: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    guard_flagged: int = 0
    scores: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


class FeedbackStore:
    def __init__(self, db: Database):
        self._db = db

    async def add(
        self,
        request_id: str,
        *,
        key_id: str | None,
        score: float | None,
        label: str | None,
        comment: str | None,
    ) -> int:
        async with self._db.session() as session:
            row = FeedbackRow(
                request_id=request_id,
                key_id=key_id,
                score=score,
                label=label,
                comment=comment,
                at=time.time(),
            )
            session.add(row)
            await session.flush()
            return int(row.id)

    async def experiment(self, name: str) -> dict[str, VariantData]:
        """Per variant: every request of the experiment and the feedback that counts."""
        variants: dict[str, VariantData] = {}
        async with self._db.session() as session:
            requests = await session.execute(
                select(
                    RequestLogRow.variant,
                    RequestLogRow.status,
                    RequestLogRow.total_ms,
                    RequestLogRow.prompt_tokens + RequestLogRow.completion_tokens,
                    RequestLogRow.cost,
                    RequestLogRow.guard_flags,
                )
                .where(RequestLogRow.experiment == name)
                .limit(_MAX_ROWS)
            )
            for variant, status, total_ms, tokens, cost, flags in requests:
                data = variants.setdefault(str(variant), VariantData())
                data.requests += 1
                data.errors += status >= 400
                data.latencies_ms.append(float(total_ms))
                data.tokens.append(int(tokens))
                data.costs.append(float(cost))
                data.guard_flagged += bool(flags)
            feedback = await session.execute(
                select(
                    RequestLogRow.variant,
                    FeedbackRow.request_id,
                    FeedbackRow.score,
                    FeedbackRow.label,
                )
                .join(RequestLogRow, RequestLogRow.request_id == FeedbackRow.request_id)
                .where(RequestLogRow.experiment == name)
                .where(
                    FeedbackRow.key_id.is_(None)
                    | FeedbackRow.key_id.is_not_distinct_from(RequestLogRow.key_id)
                )
                .order_by(FeedbackRow.id)
                .limit(_MAX_ROWS)
            )
            newest: dict[str, tuple[str, float | None, str | None]] = {}
            for variant, request_id, score, label in feedback:
                newest[request_id] = (str(variant), score, label)
        for variant, score, label in newest.values():
            data = variants.setdefault(variant, VariantData())
            if score is not None:
                data.scores.append(float(score))
            if label is not None:
                data.labels.append(label)
        return variants
