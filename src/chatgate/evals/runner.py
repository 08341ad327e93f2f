"""Running an evaluation through a gateway: every case under every variant, with bounded
concurrency, answers cached by request body (a rerun asks the model only for what changed), and
results appended to a JSONL file as they finish (an interrupted run resumes where it stopped)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from chatgate.evals.assertions import Answer, check
from chatgate.evals.dataset import Case, Plan, Variant

__all__ = ["EvalClient", "Outcome", "Runner", "read_results"]


@dataclass(slots=True)
class Outcome:
    case: str
    variant: str
    fingerprint: str
    passed: bool
    output: str | None
    error: str | None
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    request_id: str | None
    cached: bool
    assertions: list[dict[str, Any]] = field(default_factory=list)


def read_results(path: Path) -> list[Outcome]:
    if not path.exists():
        return []
    outcomes = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            outcomes.append(Outcome(**orjson.loads(line)))
    return outcomes


class EvalClient:
    """The gateway over HTTP: chat completions (JSON) and moderations."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float):
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EvalClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(
        self, path: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        assert self._session is not None
        async with self._session.post(f"{self._base}{path}", json=body, headers=self._headers) as r:
            payload = await r.json(content_type=None)
            return r.status, payload, dict(r.headers)

    async def moderate(self, text: str) -> list[str]:
        status, payload, _ = await self.post("/moderations", {"input": text})
        if status != 200:
            raise RuntimeError(f"moderation failed: {payload}")
        categories = payload["results"][0]["categories"]
        return [name for name, hit in categories.items() if hit]

    async def complete(self, body: dict[str, Any]) -> str:
        status, payload, _ = await self.post("/chat/completions", body)
        if status != 200:
            raise RuntimeError(f"judge call failed: {payload}")
        return str(payload["choices"][0]["message"]["content"] or "")


class Runner:
    def __init__(
        self,
        client: EvalClient,
        plan: Plan,
        cases: list[Case],
        results: Path,
        *,
        concurrency: int = 8,
        cache: Path | None = None,
    ):
        self._client, self._plan, self._cases = client, plan, cases
        self._results, self._cache = results, cache
        self._gate = asyncio.Semaphore(concurrency)

    def pending(self) -> list[tuple[Case, Variant]]:
        done = {(o.case, o.variant, o.fingerprint) for o in read_results(self._results)}
        return [
            (case, variant)
            for variant in self._plan.variants
            for case in self._cases
            if (case.id, variant.name, variant.fingerprint()) not in done
        ]

    async def run(self, progress: Callable[[], None]) -> None:
        self._results.parent.mkdir(parents=True, exist_ok=True)
        with self._results.open("ab") as sink:

            async def one(case: Case, variant: Variant) -> None:
                async with self._gate:
                    outcome = await self._evaluate(case, variant)
                sink.write(orjson.dumps(asdict(outcome)) + b"\n")
                sink.flush()
                progress()

            await asyncio.gather(*(one(c, v) for c, v in self.pending()))

    async def _answer(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The gateway's answer to ``body`` (from the cache when it holds one)."""
        digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        cached = self._cache / f"{digest}.json" if self._cache is not None else None
        if cached is not None and cached.exists():
            return orjson.loads(cached.read_bytes()), True
        started = time.perf_counter()
        status, payload, headers = await self._client.post("/chat/completions", body)
        record = {
            "status": status,
            "payload": payload,
            "latency_ms": (time.perf_counter() - started) * 1000,
            "cost": float(headers["x-chatgate-cost"]) if "x-chatgate-cost" in headers else None,
            "request_id": headers.get("x-request-id"),
        }
        if cached is not None and status == 200:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(orjson.dumps(record))
        return record, False

    async def _evaluate(self, case: Case, variant: Variant) -> Outcome:
        body = variant.body(case)
        outcome = Outcome(
            case.id,
            variant.name,
            variant.fingerprint(),
            False,
            None,
            None,
            0.0,
            0,
            0,
            None,
            None,
            False,
        )
        try:
            record, outcome.cached = await self._answer(body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome.error = f"request failed: {exc!r}"
            return outcome
        payload = record["payload"]
        outcome.latency_ms, outcome.cost = record["latency_ms"], record["cost"]
        outcome.request_id = record["request_id"]
        if record["status"] != 200:
            outcome.error = str((payload.get("error") or {}).get("message") or payload)[:500]
            return outcome
        usage = payload.get("usage") or {}
        outcome.prompt_tokens = int(usage.get("prompt_tokens", 0))
        outcome.completion_tokens = int(usage.get("completion_tokens", 0))
        outcome.output = str(payload["choices"][0]["message"].get("content") or "")
        question = "\n".join(str(m.get("content")) for m in body.get("messages", []))
        answer = Answer(
            outcome.output, outcome.completion_tokens, outcome.latency_ms, outcome.cost, question
        )
        judge = self._plan.judge.model if self._plan.judge is not None else None
        passed = True
        for assertion in case.all_assertions(self._plan.assertions):
            try:
                checked = await check(assertion, answer, self._client, judge)
            except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                outcome.assertions.append(
                    {"type": assertion.type, "passed": False, "detail": str(exc)[:300]}
                )
                passed = False
                continue
            outcome.assertions.append(checked.as_dict())
            passed &= checked.passed
        outcome.passed = passed
        return outcome
