"""Fuzzing chatgate against its own OpenAPI document (schemathesis): for every operation,
generated requests — valid and invalid — never get a 5xx, never crash the server, and every
error comes back in OpenAI's shape. Admin operations are fuzzed with the master key; chat goes
to the fake upstream. A small run (CI); raise ``FUZZ_EXAMPLES`` for a longer one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from chatgate.api.openapi import openapi_document
from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, start_gateway

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
AUTH = {"authorization": f"Bearer {MASTER}"}
SCHEMA = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Gateway]:
    config = (
        f"models:\n  - name: echo\n    provider: openai_compat\n    base_url: {upstream.base_url}\n"
    )
    gateway = start_gateway(
        Path(tmp_path_factory.mktemp("fuzz")), config, env={"CHATGATE_MASTER_KEY": MASTER}
    )
    yield gateway
    assert gateway.process.poll() is None, "the gateway crashed under fuzzing"
    gateway.stop()


def assert_error_shape(body: Any) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error


def test_every_operation_is_fuzzed() -> None:
    assert "POST /v1/chat/completions" in OPERATIONS
    assert any(label.startswith("POST /admin/keys") for label in OPERATIONS)


def _has_inputs(label: str) -> bool:
    op = OPERATIONS[label]
    return any(len(part) for part in (op.body, op.query, op.path_parameters, op.headers))


# Negative mode needs something to break: operations without any input get positive mode only.
CASES = [(label, GenerationMode.POSITIVE) for label in sorted(OPERATIONS)] + [
    (label, GenerationMode.NEGATIVE) for label in sorted(OPERATIONS) if _has_inputs(label)
]


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{lb}-{m.value}" for lb, m in CASES])
def test_no_5xx_and_every_error_in_openai_shape(
    label: str, mode: GenerationMode, fuzzed: Gateway
) -> None:
    """Positive mode: requests that follow the schema; negative: requests that break it."""

    @given(case=OPERATIONS[label].as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call(base_url=fuzzed.url, headers=AUTH, timeout=30)
        assert response.status_code < 500, (case.method, case.path, response.text[:500])
        if response.status_code >= 400:
            assert_error_shape(response.json())

    check()
