"""The dashboard: its data endpoint, and the page rendered by headless Chromium with charts drawn
by the vendored uPlot (a screenshot is kept in test-artifacts/); names from the request log are
shown as text under a strict Content-Security-Policy."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from chatgate.api.pages import DASHBOARD_CSP
from tests.browser import new_page
from tests.fake_upstream import FakeUpstream
from tests.support import Gateway, post_json, raw, start_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    fake = FakeUpstream()
    fake.start()
    config = (
        "observability: {flush_interval: 0.1}\nmodels:\n  - name: echo\n"
        f"    provider: openai_compat\n    base_url: {fake.base_url}\n"
        "    pricing: {input: 1, output: 1}\n"
    )
    server = start_gateway(tmp_path_factory.mktemp("dashboard"), config=config)
    for i in range(12):
        body: dict[str, Any] = {
            "model": "echo",
            "messages": [{"role": "user", "content": f"hello {i}"}],
        }
        if i % 3 == 0:
            body["temperature"] = 0
        post_json(f"{server.base_url}/chat/completions", body)
    for i in range(3):
        post_json(f"{server.base_url}/moderations", {"input": f"calm words {i}"})
    yield server
    server.stop()
    fake.stop()


def data(gateway: Gateway) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        body: dict[str, Any] = raw(f"{gateway.url}/admin/dashboard?hours=1").json()
        if body["totals"]["requests"] >= 15 or time.monotonic() > deadline:
            return body
        time.sleep(0.1)  # polling for the batched write, bounded


def test_dashboard_data(gateway: Gateway) -> None:
    body = data(gateway)
    assert body["totals"]["requests"] == 15
    endpoints = {e["endpoint"]: e["requests"] for e in body["endpoints"]}
    assert endpoints == {"/v1/chat/completions": 12, "/v1/moderations": 3}
    assert [m["model"] for m in body["models"]] == ["chatgate-moderation-rules", "echo"]
    assert sum(body["series"]["requests"]) == 15
    assert len(body["series"]["time"]) == len(body["series"]["p95_ms"]) > 10
    assert raw(f"{gateway.url}/admin/dashboard?hours=-1").status == 400


def test_static_files_are_served_from_the_package(gateway: Gateway) -> None:
    script = raw(f"{gateway.url}/static/uPlot.iife.min.js")
    assert script.status == 200 and b"uPlot" in script.body
    assert raw(f"{gateway.url}/static/nope.js").status == 404


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is needed for the dashboard test (scripts/test installs it)"
    return found


def _browser(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--window-size=1280,1100",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_page_renders_charts_and_tables(gateway: Gateway, tmp_path: Path, artifacts: Path) -> None:
    data(gateway)  # the records are written
    url = f"{gateway.url}/dashboard?hours=1"
    dom = _browser(["--dump-dom", url], tmp_path / "profile-dom").stdout
    assert 'data-ready="true"' in dom, dom[-2000:]
    assert len(re.findall(r"<canvas", dom)) >= 5  # one per chart
    assert "<td>echo</td><td>12</td>" in dom
    shot = artifacts / "dashboard.png"
    shot.unlink(missing_ok=True)
    _browser([f"--screenshot={shot}", url], tmp_path / "profile-shot")
    assert shot.exists() and shot.stat().st_size > 10_000


HOSTILE_MODEL = "<img src=x onerror=window.__pwned=1>"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose request log holds a model name that is markup."""
    fake = FakeUpstream()
    fake.start()
    config = (
        "observability: {flush_interval: 0.1}\nmodels:\n  - name: echo\n"
        f"    provider: openai_compat\n    base_url: {fake.base_url}\n"
    )
    server = start_gateway(tmp_path_factory.mktemp("dashboard-hostile"), config=config)
    body = {"model": HOSTILE_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    assert post_json(f"{server.base_url}/chat/completions", body).status == 404
    yield server
    server.stop()
    fake.stop()


def test_names_from_the_request_log_are_text_under_a_strict_policy(
    hostile: Gateway, browser: Browser
) -> None:
    deadline = time.monotonic() + 10
    while not any(
        m["model"] == HOSTILE_MODEL
        for m in raw(f"{hostile.url}/admin/dashboard?hours=1").json()["models"]
    ):
        assert time.monotonic() < deadline, "the request was not logged"
        time.sleep(0.1)  # polling for the batched write, bounded
    response = raw(f"{hostile.url}/dashboard")
    assert response.headers["content-security-policy"] == DASHBOARD_CSP
    page_html = response.body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page_html)  # no inline script
    assert "<style" not in page_html and " style=" not in page_html
    context = browser.new_context()
    try:
        watch = new_page(context)
        page = watch.page
        page.goto(f"{hostile.url}/dashboard?hours=1")
        page.wait_for_function("() => document.body.dataset.ready === 'true'")
        cell = page.locator("#models td").first
        expect(cell).to_have_text(HOSTILE_MODEL)  # shown as the text it is
        assert page.locator("#models img, img").count() == 0
        assert page.evaluate("() => window.__pwned") is None
        expect(page.locator("canvas")).to_have_count(5)  # uPlot still draws under the policy
        watch.clean()
    finally:
        context.close()
