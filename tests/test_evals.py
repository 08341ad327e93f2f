"""``chatgate eval run`` as a user runs it: through a live gateway, assertions, a results file
that a second run resumes (nothing asked twice), the comparison table, paired comparisons and
the exit code CI reads; and the example in the repository against the embedded model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import Gateway, start_gateway

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, FakeUpstream]]:
    fake = FakeUpstream()
    fake.start()
    config = {
        "models": [
            {"name": "echo", "provider": "openai_compat", "base_url": fake.base_url},
            {"name": "broken", "provider": "openai_compat", "base_url": fake.base_url,
             "upstream_model": "error-400"},
        ],
    }  # fmt: skip
    server = start_gateway(tmp_path_factory.mktemp("evals"), config=json.dumps(config))
    yield server, fake
    server.stop()
    fake.stop()


def run_eval(base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "chatgate", "eval", "run", *args, "--base-url", base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


CASES: list[dict[str, Any]] = [
    {"id": "same", "input": "hello world", "expected": "hello world"},
    {"id": "contains", "input": "the cat sat", "assert": [{"type": "contains", "value": "cat"}]},
    {"id": "json", "input": '{"a": 1}', "assert": [
        {"type": "json_schema", "value": {"type": "object", "required": ["a"]}}]},
    {"id": "fails", "input": "plain text", "assert": [{"type": "is_json"}]},
    {"id": "judged", "input": "SCORE: 1", "assert": [{"type": "judge", "value": "Is it kind?"}]},
    {"id": "clean", "input": "a calm sentence", "assert": [{"type": "not_flagged"}]},
]  # fmt: skip


def write(
    tmp_path: Path, variants: list[dict[str, Any]], cases: list[dict[str, Any]] = CASES
) -> tuple[Path, Path]:
    dataset = tmp_path / "cases.jsonl"
    dataset.write_text("".join(json.dumps(c) + "\n" for c in cases))
    plan = tmp_path / "variants.json"  # JSON is YAML
    shared = [{"type": "max_latency_ms", "value": 30000}]
    plan.write_text(
        json.dumps({"variants": variants, "judge": {"model": "echo"}, "assert": shared})
    )
    return dataset, plan


def test_run_assert_resume_and_report(proxy: tuple[Gateway, FakeUpstream], tmp_path: Path) -> None:
    server, fake = proxy
    dataset, plan = write(tmp_path, [{"name": "echo", "model": "echo"}])
    first = run_eval(server.base_url, str(dataset), "--variants", str(plan), "--concurrency", "4")
    assert first.returncode == 0, first.stderr
    results = [
        json.loads(line) for line in (tmp_path / "cases.results.jsonl").read_text().splitlines()
    ]
    by_case = {r["case"]: r for r in results}
    assert {c: r["passed"] for c, r in by_case.items()} == {
        "same": True, "contains": True, "json": True, "fails": False, "judged": True, "clean": True,
    }  # fmt: skip
    assert by_case["fails"]["assertions"][1]["type"] == "is_json"
    assert "| echo | 6 | 83% (44%-97%)" in first.stdout  # 5 of 6, Wilson interval
    calls = len(fake.received)
    again = run_eval(server.base_url, str(dataset), "--variants", str(plan))
    assert again.returncode == 0
    assert "resuming: 6 results" in again.stderr
    assert len(fake.received) == calls  # nothing asked twice
    assert "| echo | 6 | 83%" in again.stdout
    summary = json.loads((tmp_path / "cases.results.summary.json").read_text())
    assert summary[0]["passed"] == 5


def test_regression_against_a_baseline_variant_fails_the_run(
    proxy: tuple[Gateway, FakeUpstream], tmp_path: Path
) -> None:
    server, _ = proxy
    variants = [{"name": "good", "model": "echo"}, {"name": "bad", "model": "broken"}]
    few = [{"id": f"c{i}", "input": f"say {i}", "expected": f"say {i}"} for i in range(5)]
    dataset, plan = write(tmp_path, variants, few)
    command = ("--variants", str(plan), "--baseline-variant", "good", "--no-cache")
    small = run_eval(server.base_url, str(dataset), *command)
    assert small.returncode == 0  # 5 cases lost: p = 0.0625, not evidence of a regression
    assert "0/5 vs 5 (good), p=0.062" in small.stdout
    many = [{"id": f"c{i}", "input": f"say {i}", "expected": f"say {i}"} for i in range(12)]
    dataset, plan = write(tmp_path, variants, many)
    result = run_eval(server.base_url, str(dataset), *command, "--out", str(tmp_path / "b.jsonl"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "REGRESSION" in result.stdout and "regression in: bad" in result.stderr
    assert "| bad | 12 | 0%" in result.stdout


def test_min_pass_rate_and_a_baseline_file(
    proxy: tuple[Gateway, FakeUpstream], tmp_path: Path
) -> None:
    server, _ = proxy
    dataset, plan = write(tmp_path, [{"name": "echo", "model": "echo"}])
    out = tmp_path / "run1.jsonl"
    assert run_eval(server.base_url, str(dataset), "--variants", str(plan), "--out", str(out),
                    "--min-pass-rate", "0.8").returncode == 0  # fmt: skip
    strict = run_eval(server.base_url, str(dataset), "--variants", str(plan), "--out", str(out),
                      "--min-pass-rate", "0.9")  # fmt: skip
    assert strict.returncode == 1
    paired = run_eval(server.base_url, str(dataset), "--variants", str(plan),
                      "--out", str(tmp_path / "run2.jsonl"), "--baseline", str(out))  # fmt: skip
    assert paired.returncode == 0
    assert "5/6 vs 5 (run1.jsonl), p=1.000" in paired.stdout


def test_bad_files_are_clear_errors(proxy: tuple[Gateway, FakeUpstream], tmp_path: Path) -> None:
    server, _ = proxy
    _, plan = write(tmp_path, [{"name": "echo", "model": "echo"}])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a", "input": "x"}\n{"id": "a", "input": "y"}\n')
    result = run_eval(server.base_url, str(broken), "--variants", str(plan))
    assert result.returncode == 1 and "broken.jsonl:2: duplicate case id 'a'" in result.stderr
    broken.write_text("not json\n")
    assert (
        "broken.jsonl:1: not JSON"
        in run_eval(server.base_url, str(broken), "--variants", str(plan)).stderr
    )


def test_the_example_runs_against_the_embedded_model(gateway: Gateway, tmp_path: Path) -> None:
    result = run_eval(
        gateway.base_url,
        str(ROOT / "examples" / "eval" / "dataset.jsonl"),
        "--variants", str(ROOT / "examples" / "eval" / "variants.yaml"),
        "--out", str(tmp_path / "example.jsonl"),
        "--concurrency", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "example.jsonl").read_text().splitlines()
    assert len(lines) == 8  # 4 cases x 2 variants, each answered by the model
    assert all(json.loads(line)["error"] is None for line in lines)
    assert "| baseline | 4 |" in result.stdout and "| terse | 4 |" in result.stdout
