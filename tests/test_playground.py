"""The chat playground (/playground) in a real browser (Debian Chromium driven by Playwright).

Each test proves one behaviour a developer relies on: replies stream in progressively with their
tokens, cost and latency; Stop cancels the upstream call; model output is sanitised (no script,
no remote image, no ``javascript:`` link); finished markdown blocks are never re-rendered; a 429
shows a live countdown; "View code" gives a runnable request without the real key; the compare
view sends one message to two variants; turns outside the context window are marked; templates
and vector stores appear once they exist. Every page must run without errors or CSP violations.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser import HostPage, PageWatch, lengths_while, new_page, serve_pages
from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, post_json, start_gateway

LONG = " ".join(f"word{i}" for i in range(60))
"""60 words: about 2.4 s as ``drip-40`` streams them."""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


def _models(fake: FakeUpstream, extra: str = "") -> str:
    entries = ""
    for name in ("echo", "drip-20", "drip-40"):
        entries += (
            f"  - name: {name}\n    provider: openai_compat\n    base_url: {fake.base_url}\n"
            "    pricing: {input: 1, output: 2}\n"
        )
    return "models:\n" + entries + extra


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream) -> Iterator[Gateway]:
    """Open mode (no master key), fake models, and ``tiny``: a 200-token context window."""
    tiny = (
        f"  - name: tiny\n    provider: openai_compat\n    base_url: {fake.base_url}\n"
        "    upstream_model: echo\n    context_window: 200\n"
    )
    server = start_gateway(tmp_path_factory.mktemp("playground"), _models(fake, tiny))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keyed_gateway(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream
) -> Iterator[tuple[Gateway, str, str]]:
    """A gateway with a master key; a virtual key limited to 1 request a minute, and one not."""
    server = start_gateway(
        tmp_path_factory.mktemp("playground-keyed"),
        _models(fake),
        env={"CHATGATE_MASTER_KEY": MASTER},
    )
    auth = {"Authorization": f"Bearer {MASTER}"}
    limited = post_json(f"{server.url}/admin/keys", {"name": "rpm1", "limits": {"rpm": 1}}, **auth)
    free = post_json(f"{server.url}/admin/keys", {"name": "free"}, **auth)
    assert limited.status == free.status == 201, (limited.body, free.body)
    yield server, limited.json()["secret"], free.json()["secret"]
    server.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    yield ctx
    ctx.close()


def open_playground(context: BrowserContext, gateway: Gateway) -> PageWatch:
    watch = new_page(context)
    watch.page.goto(f"{gateway.url}/playground")
    watch.page.wait_for_function("() => document.body.dataset.ready === 'true'")
    return watch


def use_key(page: Page, key: str, remember: bool = False) -> None:
    expect(page.get_by_label("API key")).to_be_visible()
    page.get_by_label("API key").fill(key)
    if remember:
        page.get_by_label("remember on this device").check()
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#model-0 option").first).to_be_attached()


def ask(page: Page, text: str) -> None:
    page.locator("#input").fill(text)
    page.locator("#input").press("Enter")


def last_reply(page: Page, variant: int = 0) -> Any:
    return page.locator(f"#columns .column >> nth={variant}").locator(".msg.assistant").last


def wait_done(page: Page) -> None:
    page.wait_for_function(
        "() => !document.querySelector('.msg[aria-busy]')"
        " && document.querySelector('#stop').disabled"
    )


def poll(read: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``read()`` once truthy: bounded polling of a server-side counter."""
    deadline = time.monotonic() + timeout
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


# ---------------------------------------------------------------------------------------------


def test_embedded_model_streams_progressively_with_stats(
    gateway: Gateway, context: BrowserContext, artifacts: Path
) -> None:
    watch = open_playground(context, gateway)
    page = watch.page
    expect(page.locator("#key-form")).to_be_hidden()  # open mode: no key needed
    options = page.locator("#model-0 option").all_text_contents()
    assert "smollm2-135m-instruct" in options
    assert "all-minilm-l6-v2" not in options  # embedding models are left out of the picker
    page.locator("#max-tokens-0").fill("64")
    ask(page, "Tell me a short story about a lighthouse keeper.")
    reply = last_reply(page)
    body = reply.locator(".msg-body")
    lengths = lengths_while(
        page,
        lambda: len(body.text_content() or ""),
        lambda: reply.get_attribute("aria-busy") is None,
    )
    assert len([n for n in lengths if n > 0]) >= 3, lengths  # seen growing, not landing at once
    stats = reply.locator(".stats")
    assert re.fullmatch(r"\d+ in · \d+ out", stats.locator(".stat-tokens").inner_text())
    assert stats.locator(".stat-cost").inner_text() == "$0"  # the embedded model costs nothing
    assert re.fullmatch(r"first token \d+(\.\d+)? m?s", stats.locator(".stat-ttft").inner_text())
    assert re.fullmatch(r"total \d+(\.\d+)? m?s", stats.locator(".stat-total").inner_text())
    assert stats.locator(".stat-id").inner_text().startswith("req_")
    page.screenshot(path=artifacts / "playground-stream.png")
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=artifacts / "playground-dark.png")
    watch.clean()


def test_stop_cancels_the_upstream_call(
    open_gateway: Gateway, fake: FakeUpstream, context: BrowserContext, artifacts: Path
) -> None:
    watch = open_playground(context, open_gateway)
    page = watch.page
    page.locator("#model-0").select_option("drip-40")
    cancelled = fake.drips["cancelled"]
    ask(page, LONG)
    reply = last_reply(page)
    page.wait_for_function(
        "() => (document.querySelector('.msg.assistant .md')?.textContent || '').length > 20"
    )
    page.get_by_role("button", name="Stop").click()
    expect(reply.locator(".msg-status")).to_have_text("stopped")
    assert poll(lambda: fake.drips["cancelled"] == cancelled + 1), fake.drips
    assert fake.drip_sent[-1] < 60  # the upstream stopped part-way
    assert "word1" in (reply.locator(".md").text_content() or "")  # the partial reply stays
    expect(page.locator("#send")).to_be_enabled()
    page.screenshot(path=artifacts / "playground-stopped.png")
    watch.clean()


HOSTILE = """## Heading

<script>window.__pwned = 1</script>

<img src=x onerror="window.__pwned = 2">

![p]({pixel})

[x](javascript:window.__pwned=3)

- first item
- second item

| a | b |
|---|---|
| 1 | 2 |

```python
print("fenced")
```
"""


def test_model_output_is_sanitised(
    open_gateway: Gateway, context: BrowserContext, artifacts: Path
) -> None:
    hits: list[bytes] = []

    def pixel(body: bytes) -> tuple[int, bytes]:
        hits.append(body)
        return 200, b"{}"

    with serve_pages({"/pixel.png": HostPage(b"", handler=pixel)}) as host:
        watch = open_playground(context, open_gateway)
        page = watch.page
        page.locator("#model-0").select_option("echo")
        page.locator("#input").fill(HOSTILE.format(pixel=f"{host}/pixel.png"))
        page.get_by_role("button", name="Send").click()
        wait_done(page)
        md = last_reply(page).locator(".md")
        expect(md.locator("h2")).to_have_text("Heading")
        expect(md.locator("li")).to_have_count(2)
        expect(md.locator("table td")).to_have_count(2)
        expect(md.locator("pre code")).to_contain_text('print("fenced")')
        assert md.locator("script, img, iframe, [onerror]").count() == 0
        assert page.locator("img").count() == 0
        hrefs = md.locator("a").evaluate_all("(links) => links.map((a) => a.getAttribute('href'))")
        assert not [h for h in hrefs if h and h.lower().startswith("javascript")], hrefs
        expect(md.get_by_text("[image: p]")).to_be_visible()  # the image became a link
        assert "<script>" in (md.text_content() or "")  # raw HTML is shown as text
        assert page.evaluate("() => window.__pwned") is None
        assert hits == []  # the remote image was never fetched
        page.screenshot(path=artifacts / "playground-sanitised.png")
        watch.clean()


def test_finished_blocks_are_not_rendered_again(
    open_gateway: Gateway, context: BrowserContext
) -> None:
    watch = open_playground(context, open_gateway)
    page = watch.page
    page.locator("#model-0").select_option("drip-20")
    first = "The first paragraph is finished early."
    ask(page, f"{first}\n\n{LONG}\n\nAnd a last paragraph.")
    page.wait_for_function(
        "(first) => [...document.querySelectorAll('.msg.assistant .md p')]"
        ".some((p) => p.textContent === first && !p.closest('.md-live'))",
        arg=first,
    )
    handle = page.evaluate_handle(
        "(first) => [...document.querySelectorAll('.msg.assistant .md p')]"
        ".find((p) => p.textContent === first)",
        first,
    )
    assert last_reply(page).get_attribute("aria-busy") == "true"  # taken mid-stream
    wait_done(page)
    expect(last_reply(page).locator(".md p")).to_have_count(3)
    assert handle.evaluate("(p) => p.isConnected")  # the same element: never re-rendered
    watch.clean()


def test_rate_limit_shows_a_countdown(
    keyed_gateway: tuple[Gateway, str, str], context: BrowserContext, artifacts: Path
) -> None:
    server, limited, _ = keyed_gateway
    watch = open_playground(context, server)
    page = watch.page
    use_key(page, limited)  # /v1/models answered 401 without one: the key field appeared
    assert page.evaluate("() => sessionStorage.length") == 1
    assert page.evaluate("() => Object.values(sessionStorage)") == [limited]
    assert limited not in json.dumps(page.evaluate("() => ({...localStorage})"))
    page.locator("#model-0").select_option("echo")
    ask(page, "one")
    wait_done(page)
    expect(last_reply(page).locator(".md")).to_have_text("one")
    ask(page, "two")
    alert = last_reply(page).get_by_role("alert")
    expect(alert).to_contain_text("Rate limited.")
    countdown = alert.locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"Try again in \d+ s\."))
    first = int(re.findall(r"\d+", countdown.inner_text())[0])
    assert 1 < first <= 60
    expect(page.locator("#send")).to_be_disabled()
    page.wait_for_function(
        "(first) => Number(/\\d+/.exec(document.querySelector('.countdown').textContent)[0])"
        " < first",
        arg=first,
    )
    expect(page.locator("#send")).to_be_disabled()
    assert page.locator("#input").input_value() == "two"  # kept to send again
    page.screenshot(path=artifacts / "playground-429.png")
    watch.clean()


def _curl_body(curl: str) -> Any:
    words = shlex.split(curl.replace("\\\n", " "))
    assert words[:2] == ["curl", "-N"]
    return json.loads(words[words.index("-d") + 1])


def test_view_code_gives_python_and_curl(
    keyed_gateway: tuple[Gateway, str, str], context: BrowserContext, artifacts: Path
) -> None:
    server, _, key = keyed_gateway
    watch = open_playground(context, server)
    page = watch.page
    use_key(page, key, remember=True)
    assert key in json.dumps(page.evaluate("() => ({...localStorage})"))  # remembered
    page.locator("#model-0").select_option("echo")
    page.locator("#system-0").fill("Answer like a pirate.")
    page.locator("#temperature-0").fill("0.3")
    page.locator("#max-tokens-0").fill("77")
    page.locator("#input").fill("It's a 'quoted' line")
    page.locator("#input").press("Shift+Enter")  # a newline, not a send
    page.locator("#input").type('and "more"')
    assert page.locator(".msg").count() == 0
    page.get_by_role("button", name="View code").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    messages = [
        {"role": "system", "content": "Answer like a pirate."},
        {"role": "user", "content": "It's a 'quoted' line\nand \"more\""},
    ]
    python = page.locator("#code").inner_text()
    assert f'base_url="{server.url}/v1"' in python
    assert 'api_key=os.environ["CHATGATE_API_KEY"]' in python
    assert 'model="echo"' in python
    assert '"content": "It\'s a \'quoted\' line\\nand \\"more\\""' in python
    assert "temperature=0.3" in python and "max_tokens=77" in python
    assert "stream=True" in python
    assert '"overflow": "truncate_oldest"' in python.split("extra_body=")[1]
    dialog.get_by_role("tab", name="curl").click()
    curl = page.locator("#code").inner_text()
    assert f"{server.url}/v1/chat/completions" in curl
    assert _curl_body(curl) == {
        "model": "echo",
        "messages": messages,
        "temperature": 0.3,
        "max_tokens": 77,
        "context": {"overflow": "truncate_oldest", "clamp_max_tokens": True},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert key not in python and key not in curl and MASTER not in curl
    dialog.screenshot(path=artifacts / "playground-code.png")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == curl

    # Both run as shown, with the key from the environment.
    env = {**os.environ, "CHATGATE_API_KEY": key}
    ran = subprocess.run(
        [sys.executable, "-c", python],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert "It's a 'quoted' line" in ran.stdout
    ran = subprocess.run(
        ["bash", "-c", curl], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert "data: [DONE]" in ran.stdout and "x-chatgate-cost" in ran.stdout
    watch.clean()


def test_compare_streams_two_variants_side_by_side(
    open_gateway: Gateway, fake: FakeUpstream, context: BrowserContext, artifacts: Path
) -> None:
    watch = open_playground(context, open_gateway)
    page = watch.page
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#model-1")).to_be_visible()
    page.locator("#model-0").select_option("drip-20")
    page.locator("#system-0").fill("You are variant A.")
    page.locator("#temperature-0").fill("0.1")
    page.locator("#model-1").select_option("drip-40")
    page.locator("#system-1").fill("You are variant B.")
    page.locator("#temperature-1").fill("0.9")
    seen = len(fake.received)
    fake.gate("drip-40")  # B's words arrive one at a time, when this test lets them
    try:
        ask(page, "compare these two models please")
        a, b = last_reply(page, 0), last_reply(page, 1)
        for shown in ("compare", "compare these", "compare these two"):
            fake.release_words("drip-40")
            expect(b.locator(".md")).to_have_text(shown)  # B streams too: each word shows
            assert b.get_attribute("aria-busy") is not None
    finally:
        fake.ungate("drip-40")
    wait_done(page)
    for reply, model in ((a, "drip-20"), (b, "drip-40")):
        expect(reply.locator(".md")).to_have_text("compare these two models please")
        expect(reply.locator(".msg-role")).to_have_text(model)
        expect(reply.locator(".stat-tokens")).to_have_text(re.compile(r"\d+ in · \d+ out"))
    sent = {r.body["model"]: r.body for r in fake.received[seen:]}
    assert sent["drip-20"]["messages"][0]["content"] == "You are variant A."
    assert sent["drip-20"]["temperature"] == 0.1
    assert sent["drip-40"]["messages"][0]["content"] == "You are variant B."
    assert sent["drip-40"]["temperature"] == 0.9
    page.screenshot(path=artifacts / "playground-compare.png")
    page.set_viewport_size({"width": 600, "height": 1000})  # narrow: the columns stack
    box_a = page.locator(".column >> nth=0").bounding_box()
    box_b = page.locator(".column >> nth=1").bounding_box()
    assert box_a and box_b and box_b["y"] >= box_a["y"] + box_a["height"]
    page.screenshot(path=artifacts / "playground-narrow.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 860})

    # Escape stops both columns at once.
    cancelled = fake.drips["cancelled"]
    ask(page, LONG)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.column')].every((c) =>"
        " ([...c.querySelectorAll('.msg.assistant .md')].at(-1)?.textContent || '').length > 10)"
    )
    page.keyboard.press("Escape")
    expect(last_reply(page, 0).locator(".msg-status")).to_have_text("stopped")
    expect(last_reply(page, 1).locator(".msg-status")).to_have_text("stopped")
    assert poll(lambda: fake.drips["cancelled"] == cancelled + 2), fake.drips
    watch.clean()


def test_turns_outside_the_context_window_are_marked(
    open_gateway: Gateway, fake: FakeUpstream, context: BrowserContext, artifacts: Path
) -> None:
    watch = open_playground(context, open_gateway)
    page = watch.page
    page.locator("#model-0").select_option("tiny")
    page.locator("#max-tokens-0").fill("20")
    turns = [" ".join(f"t{n}w{i}" for i in range(25)) for n in range(3)]
    for text in turns:
        ask(page, text)
        wait_done(page)
    expect(page.locator(".msg.assistant .stats")).to_have_count(3)
    expect(page.locator(".stat-cost").first).to_have_text("—")  # tiny has no price: unknown
    first_user = page.locator(".msg.user").first
    expect(first_user).to_have_class(re.compile(r"\bdropped\b"))
    expect(first_user.locator(".msg-note")).to_have_text(
        "not sent: outside the model's context window"
    )
    expect(page.locator(".msg.user").last).not_to_have_class(re.compile(r"\bdropped\b"))
    last = fake.received[-1].body["messages"]
    assert turns[2] in json.dumps(last) and turns[0] not in json.dumps(last)
    dropped = page.locator(".msg.dropped").count()
    assert dropped >= 2  # the whole oldest turn: its question and its answer
    page.screenshot(path=artifacts / "playground-context.png")
    watch.clean()


HANDBOOK = (
    "Vacation policy. Every employee gets 25 paid vacation days per calendar year.\n\n"
    "Meal allowance. Travelling staff may spend up to 40 euros per day on meals.\n"
)


def test_templates_and_stores_appear_once_they_exist(
    open_gateway: Gateway, fake: FakeUpstream, context: BrowserContext, artifacts: Path
) -> None:
    watch = open_playground(context, open_gateway)
    page = watch.page
    expect(page.locator("#template-box")).to_be_hidden()
    expect(page.locator("#knowledge-box")).to_be_hidden()

    template = {
        "id": "greeter",
        "description": "Greets a customer",
        "messages": [{"role": "system", "content": "Greet {{ name }} as a {{ tier }} customer."}],
        "variables": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
            },
            "required": ["name"],
        },
    }
    assert post_json(f"{open_gateway.url}/admin/prompts", template).status == 201
    client = openai.OpenAI(base_url=open_gateway.base_url, api_key="unused", max_retries=0)
    file_id = client.files.create(
        file=("handbook.txt", io.BytesIO(HANDBOOK.encode())), purpose="assistants"
    ).id
    store = client.vector_stores.create(name="handbook")
    done = client.vector_stores.files.create_and_poll(
        file_id=file_id, vector_store_id=store.id, max_wait_seconds=120
    )
    assert done.status == "completed", done.last_error

    page.reload()
    page.wait_for_function("() => document.body.dataset.ready === 'true'")
    expect(page.locator("#template-box")).to_be_visible()
    expect(page.locator("#knowledge-box")).to_be_visible()
    page.get_by_label("Template", exact=True).select_option("greeter")
    page.get_by_label("name *").fill("Ada")
    page.get_by_label("tier").select_option("pro")
    page.get_by_label("Vector store").select_option(store.id)
    page.locator("#model-0").select_option("echo")
    ask(page, "How many vacation days does an employee get?")
    wait_done(page)
    reply = last_reply(page)
    expect(reply.locator(".citations li").first).to_contain_text("handbook.txt")
    body = fake.received[-1].body
    text = json.dumps(body["messages"])
    assert "Greet Ada as a pro customer." in text  # the template, rendered with its variables
    assert "25 paid vacation days" in text  # the grounding sources
    assert "prompt" not in body and "knowledge" not in body
    page.screenshot(path=artifacts / "playground-templates.png")
    watch.clean()


# ------------------------------------------------------------------------- the shared chat core

MARKDOWN_DOCS = {
    "crlf paragraphs": (
        "First paragraph\r\nstill first\r\nand first\r\nto the end.\r\n\r\n"
        "Second **bold**\r\nline.\r\n\r\nThird.\r\n"
    ),
    "lone cr": "One\rline\r\rTwo\r",
    "lists": (
        "Tight:\n\n- a\n- b\n- c\n\nLoose:\n\n1. one\n\n2. two\n\n   more of two\n\n"
        "Nested:\n\n- outer\n  - inner\n    - deeper\n- back\n\nAfter the lists.\n"
    ),
    "fenced code": (
        "Before.\n\n```python\ndef f():\n\n    return 1\n\n\nprint(f())\n```\n\n"
        "Between.\n\n```\nnever closed\n\nstill code\n"
    ),
    "indented code": "Text.\n\n    code line 1\n\n    code line 2\n\nText again.\n",
    "setext and table": (
        "Title\n=====\n\nSub\n---\n\n| a | b |\n|---|:-:|\n| 1 | 2 |\n| 3 | 4 |\n\nEnd.\n"
    ),
    "blockquote": "> quoted\n> more\n>\n> - item\n\n> second quote\n\nplain\n",
    "references": (
        "See [the docs][d] and [x].\n\nMore text.\n\n"
        "[d]: https://a.example/d\n[x]: https://b.example/x 'X'\n"
    ),
    "raw html": (
        "<div>\n<b>bold?</b>\n\n</div>\n\n<script>window.__pwned = 1</script>\n\nText <i>x</i>.\n"
    ),
    "crlf mix": "# Head\r\n\r\n- a\r\n- b\r\n\r\n```\r\ncode\r\n\r\nmore\r\n```\r\n\r\n> q\r\n",
}

INCREMENTAL_VS_FULL = """([docs, sizes]) => {
  const core = chatgateCore(marked, DOMPurify);
  const html = (node) => {
    const box = document.createElement('div');
    box.append(node);
    return box.innerHTML;
  };
  const failures = [];
  for (const [name, text] of Object.entries(docs)) {
    for (const size of sizes) {
      const container = document.createElement('div');
      const view = new core.MarkdownView(container);
      const want = html(core.sanitize(view.parser.parse(text)));
      for (let i = 0; i < text.length; i += size) {
        view.push(text.slice(i, i + size));
        view.flush(false);
      }
      view.end();
      container.querySelector('.md-live').remove();
      const got = container.innerHTML;
      if (got !== want) failures.push({ name, size, got, want });
    }
  }
  return failures;
}"""


def test_incremental_markdown_renders_what_a_full_parse_does(
    open_gateway: Gateway, context: BrowserContext
) -> None:
    watch = open_playground(context, open_gateway)
    failures = watch.page.evaluate(INCREMENTAL_VS_FULL, [MARKDOWN_DOCS, [1, 3, 7, 50]])
    assert failures == [], [(f["name"], f["size"]) for f in failures] + failures[:2]
    watch.clean()


SSE_TEXT = (
    ": hello\r\n\r\n"
    'data: {"n": 1}\r\n\r\n'
    "data: line one\r\ndata: line two\r\n\r\n"
    "event: x\rid: 7\rdata:no-space\r\r"
    "data: é ✓\n\n"
    ": x-chatgate-cost: 0.5\r\n\r\n"
    "data: [DONE]\r\n\r\n"
    "data: after done\r\n\r\n"
)
SSE_EXPECTED = {
    "events": ['{"n": 1}', "line one\nline two", "no-space", "é ✓"],
    "comments": ["hello", "x-chatgate-cost: 0.5"],
}

READ_SPLIT = """async ([text, splits]) => {
  const core = chatgateCore(marked, DOMPurify);
  const bytes = new TextEncoder().encode(text);
  const results = [];
  for (const cuts of splits) {
    const bounds = [0, ...cuts, bytes.length];
    const body = new ReadableStream({
      start(controller) {
        for (let i = 0; i + 1 < bounds.length; i++) {
          controller.enqueue(bytes.slice(bounds[i], bounds[i + 1]));
        }
        controller.close();
      },
    });
    const events = [], comments = [];
    await core.readEvents(body, (data) => events.push(data), (comment) => comments.push(comment));
    results.push({ cuts, events, comments });
  }
  return results;
}"""


def test_the_event_reader_splits_events_wherever_the_reads_end(
    open_gateway: Gateway, context: BrowserContext
) -> None:
    watch = open_playground(context, open_gateway)
    size = len(SSE_TEXT.encode())
    # Every two-read split (across \r|\n, inside "data:", inside a UTF-8 character), and one
    # byte a read.
    splits = [[i] for i in range(1, size)] + [list(range(1, size))]
    results = watch.page.evaluate(READ_SPLIT, [SSE_TEXT, splits])
    wrong = [r for r in results if {k: r[k] for k in SSE_EXPECTED} != SSE_EXPECTED]
    assert not wrong, wrong[:3]
    watch.clean()


THROWING_READER = """async () => {
  const core = chatgateCore(marked, DOMPurify);
  const source = () => {
    const state = { cancelled: false };
    state.body = new ReadableStream({
      start(controller) {
        const text = 'data: {"choices": []}\\n\\ndata: not json\\n\\n';
        controller.enqueue(new TextEncoder().encode(text));
        // ...and the stream stays open, as a generating gateway's would
      },
      cancel() { state.cancelled = true; },
    });
    return state;
  };
  const waitCancelled = async (state) => {
    for (let i = 0; i < 100 && !state.cancelled; i++) await new Promise((r) => setTimeout(r, 10));
    return state.cancelled;
  };
  const out = {};
  // readEvents: a callback that throws cancels the body.
  const direct = source();
  try {
    await core.readEvents(direct.body, () => { throw new Error("boom"); });
  } catch (error) {
    out.readError = error.message;
  }
  out.readCancelled = await waitCancelled(direct);
  // streamChat: a data line that is not JSON is a ChatError, and the response is cancelled.
  const streamed = source();
  const realFetch = window.fetch;
  const headers = { "content-type": "text/event-stream" };
  window.fetch = async () => new Response(streamed.body, { headers });
  try {
    await core.streamChat({ url: "/v1/chat/completions", body: { model: "m", messages: [] } });
    out.chatError = "resolved";
  } catch (error) {
    out.chatError = {
      name: error.name, isChatError: error instanceof core.ChatError, status: error.status,
      code: error.code, summary: error.summary, partial: !!error.partial,
    };
  } finally {
    window.fetch = realFetch;
  }
  out.chatCancelled = await waitCancelled(streamed);
  return out;
}"""


def test_a_broken_stream_is_a_chat_error_and_is_cancelled(
    open_gateway: Gateway, context: BrowserContext
) -> None:
    watch = open_playground(context, open_gateway)
    out = watch.page.evaluate(THROWING_READER)
    assert out["readError"] == "boom" and out["readCancelled"] is True
    assert out["chatError"] == {
        "name": "ChatError",
        "isChatError": True,
        "status": 502,
        "code": "invalid_event",
        "summary": "The gateway or the model failed.",
        "partial": True,
    }
    assert out["chatCancelled"] is True
    watch.clean()


SANITIZE = """(cases) => {
  const core = chatgateCore(marked, DOMPurify);
  return cases.map((html) => {
    const box = document.createElement('div');
    box.append(core.sanitize(html));
    return {
      html: box.innerHTML,
      img: box.querySelectorAll('img').length,
      onerror: box.querySelectorAll('[onerror]').length,
      style: box.querySelectorAll('[style], style').length,
      form: box.querySelectorAll('form, input, button').length,
      links: [...box.querySelectorAll('a')].map((a) => ({
        href: a.getAttribute('href'), target: a.getAttribute('target'), rel: a.getAttribute('rel'),
      })),
    };
  });
}"""


def test_the_sanitiser_itself_removes_what_markdown_would_let_through(
    open_gateway: Gateway, context: BrowserContext
) -> None:
    """``sanitize`` is called on HTML directly: marked already escapes raw HTML, so a test
    through markdown would pass even if ``sanitize`` returned its input."""
    watch = open_playground(context, open_gateway)
    cases = [
        '<p>x<img src="x" onerror="window.__pwned=1">y</p>',
        '<a href="javascript:window.__pwned=1">bad</a>',
        '<a href="https://example.com/a">https</a> <a href="http://example.com/b">http</a>',
        '<p style="color: red">styled</p><style>p { color: red }</style>',
        '<form action="https://evil.example"><input name="q"><button>go</button></form>ok',
    ]
    img, js, links, styled, form = watch.page.evaluate(SANITIZE, cases)
    assert img["img"] == 0 and img["onerror"] == 0 and "xy" in img["html"]
    assert js["links"] == [
        {"href": None, "target": "_blank", "rel": "noopener noreferrer nofollow"}
    ]
    assert [link["href"] for link in links["links"]] == [
        "https://example.com/a",
        "http://example.com/b",
    ]
    for link in links["links"]:
        assert link["target"] == "_blank"
        assert {"noopener", "noreferrer"} <= set((link["rel"] or "").split())
    assert styled["style"] == 0 and "styled" in styled["html"]
    assert form["form"] == 0 and form["html"].endswith("ok")
    assert watch.page.evaluate("() => window.__pwned") is None
    # DOMPurify parses its input in an inert document, where the page's policy reports (and
    # blocks) the inline handler and styles; nothing ran and nothing threw.
    assert not watch.errors, watch.errors
