"""The browser pages as HTTP resources: the playground's page and policy, the widget bundle (one
script, vendored libraries wrapped, cacheable), the vendored files' provenance, and the cost
trailer that lets a page show what a stream cost."""

from __future__ import annotations

import hashlib
import http.client
import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from chatgate.api.pages import PLAYGROUND_CSP
from tests.fake_upstream import FakeUpstream
from tests.support import Gateway, post_json, raw, start_gateway

STATIC = Path(__file__).parent.parent / "src" / "chatgate" / "api" / "static"


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    fake = FakeUpstream()
    fake.start()
    config = (
        "models:\n  - name: echo\n    provider: openai_compat\n"
        f"    base_url: {fake.base_url}\n    pricing: {{input: 2, output: 3}}\n"
    )
    server = start_gateway(tmp_path_factory.mktemp("pages"), config=config)
    yield server
    server.stop()
    fake.stop()


def test_root_leads_to_the_playground(gateway: Gateway) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request("GET", "/")
    response = connection.getresponse()
    assert response.status == 307
    assert response.getheader("location") == "/playground"
    connection.close()


def test_playground_page_has_a_strict_policy(gateway: Gateway) -> None:
    response = raw(f"{gateway.url}/playground")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert policy == PLAYGROUND_CSP
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    page = response.body.decode()
    # The model picker is told which models are embedding models.
    assert 'name="chatgate-embedding-models" content="all-minilm-l6-v2,all-MiniLM-L6-v2"' in page
    assert "{{" not in page
    # No inline code: every script is a file of this gateway.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    assert not re.search(r"\son[a-z]+=", page) and " style=" not in page


def test_widget_bundle_is_one_cacheable_script(gateway: Gateway) -> None:
    response = raw(f"{gateway.url}/widget.js")
    assert response.status == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    body = response.body.decode()
    assert "marked v18.3.0" in body and "DOMPurify 3.5.0" in body
    assert "sourceMappingURL" not in body
    assert body.startswith("/*! chatgate widget") and body.rstrip().endswith("})();")
    etag = response.headers["etag"]
    again = raw(f"{gateway.url}/widget.js", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b""


def test_vendored_files_match_their_recorded_provenance() -> None:
    """static/README.md records each vendored file's version and sha256; the files are those."""
    readme = (STATIC / "README.md").read_text()
    for name, banner in (
        ("vendor/marked.umd.js", "marked v18.3.0"),
        ("vendor/purify.min.js", "DOMPurify 3.5.0"),
    ):
        data = (STATIC / name).read_bytes()
        assert banner in data[:400].decode()
        assert hashlib.sha256(data).hexdigest() in readme, name
    assert (STATIC / "vendor" / "marked.LICENSE").read_text().startswith("# License")
    assert "Mozilla Public License" in (STATIC / "vendor" / "DOMPurify.LICENSE-MPL").read_text()


def test_a_stream_ends_with_its_cost(priced: Gateway) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "one two three"}]}
    response = post_json(f"{priced.base_url}/chat/completions", {**body, "stream": True})
    text = response.body.decode()
    match = re.search(r"\n: x-chatgate-cost: ([0-9.]+)\n\ndata: \[DONE\]\n\n$", text)
    assert match, text[-300:]
    # Usage 3 prompt + 3 completion tokens at $2 / $3 per million.
    assert float(match.group(1)) == pytest.approx((3 * 2 + 3 * 3) / 1e6)
    plain = post_json(f"{priced.base_url}/chat/completions", body)
    assert float(plain.headers["x-chatgate-cost"]) == float(match.group(1))


def test_the_sdk_reads_a_stream_with_a_cost_trailer(priced: Gateway) -> None:
    client = openai.OpenAI(base_url=priced.base_url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "alpha beta gamma"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "alpha beta gamma"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 6
