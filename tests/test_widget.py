"""The embeddable chat widget (``/widget.js``) in a real browser, on host pages of another origin.

The host pages are served by ``examples/widget_backend.py`` itself (run as a subprocess, the way
its docstring says) or, for the special cases, by a throwaway server whose token endpoints mint
with that example's ``mint_token``. Every host page sends a strict Content-Security-Policy (no
'unsafe-inline' anywhere); the gateway allows those origins through CORS and is reached with
origin-bound browser tokens only. Screenshots land in ``test-artifacts/widget-*.png``.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Response, expect

from tests.browser import HostPage, PageWatch, lengths_while, new_page, serve_pages
from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, free_port, post_json, raw, start_gateway

BACKEND_PATH = Path(__file__).parent.parent / "examples" / "widget_backend.py"


def _load_backend() -> ModuleType:
    spec = importlib.util.spec_from_file_location("widget_backend", BACKEND_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["widget_backend"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


backend = _load_backend()

SHADOW = "document.querySelector('chatgate-chat').shadowRoot"
LAST_REPLY_LENGTH = f"""() => {{
  const replies = {SHADOW}.querySelectorAll('.msg.assistant:not(.greeting) .body');
  return replies.length ? replies[replies.length - 1].textContent.length : 0;
}}"""
OBSERVE_ANNOUNCEMENTS = f"""() => {{
  const live = {SHADOW}.querySelector('[aria-live="polite"]');
  window.__announced = [];
  new MutationObserver((records) => {{
    for (const record of records) window.__announced.push(live.textContent);
  }}).observe(live, {{ childList: true, characterData: true, subtree: true }});
}}"""
HOST_CSS = """
body { color: rgb(255, 0, 0); font-family: serif; letter-spacing: 3px; }
button { color: rgb(255, 0, 0) !important; background: rgb(255, 0, 0) !important; }
p { color: rgb(0, 128, 0); }
"""
THEME_CSS = "chatgate-chat { --chatgate-accent: rgb(1, 2, 3); --chatgate-radius: 3px; }\n"


@dataclass
class Env:
    gateway: Gateway
    fake: FakeUpstream
    key: str
    limited_key: str
    host: str
    """Origin of the throwaway host server (``pages``)."""
    pages: dict[str, HostPage]
    demo: str
    """Origin of examples/widget_backend.py, serving drip-30."""

    def settings(self, model: str, **changes: Any) -> Any:
        return backend.Settings(
            gateway=self.gateway.url, api_key=self.key, model=model, origin=self.host, **changes
        )

    def minting(self, settings: Any) -> Callable[[bytes], tuple[int, bytes]]:
        """A token endpoint: the example backend's minting, for the host server's origin."""
        return lambda _body: backend.mint_token(settings, self.host)

    def host_page(self, path: str, model: str, *, css: str = "/host.css", **data: str) -> str:
        """Serves at ``path`` a strict-CSP host page with one widget (more ``data-*`` from
        ``data``) whose token endpoint is ``path/token``; returns its URL."""
        self.pages[path] = HostPage(
            host_html(
                self.gateway.url, css, [{"token-endpoint": f"{path}/token", "model": model, **data}]
            ),
            headers={"Content-Security-Policy": backend.demo_csp(self.gateway.url)},
        )
        return f"{self.host}{path}"


def host_html(
    gateway: str, css: str, widgets: list[dict[str, str]], *, in_head: bool = False
) -> str:
    """A host page; ``in_head``: the script tags run (synchronously) before <body> exists."""
    tags = "\n".join(
        f'<script src="{gateway}/widget.js" '
        + " ".join(f'data-{k}="{html.escape(v, quote=True)}"' for k, v in w.items())
        + ("></script>" if in_head else " async></script>")
        for w in widgets
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>host page</title>
<link rel="stylesheet" href="{css}">{tags if in_head else ""}</head>
<body><h1>Host page</h1><p class="host msg">Host paragraph.</p>
<button class="launcher host" type="button">Host button</button>
{"" if in_head else tags}
</body></html>"""


def _create_key(gateway: Gateway, spec: dict[str, Any]) -> str:
    created = post_json(f"{gateway.url}/admin/keys", spec, Authorization=f"Bearer {MASTER}")
    assert created.status == 201, created.body
    secret: str = created.json()["secret"]
    return secret


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Env]:
    pages: dict[str, HostPage] = {
        "/host.css": HostPage(HOST_CSS, content_type="text/css"),
        "/theme.css": HostPage(THEME_CSS, content_type="text/css"),
    }
    demo_port = free_port()
    demo = f"http://localhost:{demo_port}"
    with serve_pages(pages) as host:
        fake_model = f"    provider: openai_compat\n    base_url: {upstream.base_url}\n"
        config = (
            f'cors:\n  allow_origins: ["{host}", "{demo}"]\nmodels:\n'
            f"  - name: drip-30\n{fake_model}  - name: drip-150\n{fake_model}"
            f"  - name: echo\n{fake_model}  - name: smollm2-135m-instruct\n"
            f"  - name: tiny\n{fake_model}    upstream_model: echo\n    context_window: 200\n"
        )
        gateway = start_gateway(
            tmp_path_factory.mktemp("widget"), config, env={"CHATGATE_MASTER_KEY": MASTER}
        )
        try:
            key = _create_key(gateway, {"name": "widget"})
            limited = _create_key(gateway, {"name": "widget-limited", "limits": {"rpm": 1}})
            demo_env = {
                "CHATGATE_URL": gateway.url,
                "CHATGATE_API_KEY": key,
                "CHATGATE_MODEL": "drip-30",
                "PATH": "/usr/bin:/bin",
            }
            process = subprocess.Popen(
                [sys.executable, str(BACKEND_PATH), "--port", str(demo_port)], env=demo_env
            )
            try:
                deadline = time.monotonic() + 20
                while True:
                    try:
                        if raw(f"http://127.0.0.1:{demo_port}/", timeout=2).status == 200:
                            break
                    except OSError:
                        pass
                    assert process.poll() is None, "the example backend exited"
                    assert time.monotonic() < deadline, "the example backend did not start"
                    time.sleep(0.05)  # polling for start-up, bounded
                yield Env(gateway, upstream, key, limited, host, pages, demo)
            finally:
                process.terminate()
                process.wait(10)
        finally:
            gateway.stop()


@pytest.fixture
def watch(browser: Browser) -> Iterator[PageWatch]:
    context = browser.new_context()
    try:
        yield new_page(context)
    finally:
        context.close()


def shadow(page: Page, body: str) -> Any:
    """Evaluates ``body`` with ``root`` = the (first) widget's shadow root."""
    return page.evaluate(f"() => {{ const root = {SHADOW}; {body} }}")


def normal(text: str) -> str:
    return " ".join(text.split())


def wait_replies(page: Page, count: int) -> None:
    page.wait_for_function(
        f"() => {SHADOW}.querySelectorAll('.msg.assistant.done:not(.greeting)').length >= {count}"
    )


def test_widget_streams_cross_origin_with_an_origin_bound_token(
    env: Env, watch: PageWatch, artifacts: Path
) -> None:
    page = watch.page
    responses: list[Response] = []
    page.on("response", lambda r: responses.append(r) if r.url.endswith("/token") else None)
    page.goto(f"{env.demo}/")
    launcher = page.locator("chatgate-chat .launcher")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    launcher.click()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    assert shadow(page, "return root.activeElement && root.activeElement.tagName") == "TEXTAREA"
    page.evaluate(OBSERVE_ANNOUNCEMENTS)

    words = " ".join(f"word{i}" for i in range(40))
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")  # a new line, not a send
    page.keyboard.type(words)
    assert shadow(page, "return root.querySelector('textarea').value") == f"first line\n{words}"
    assert shadow(page, "return root.querySelectorAll('.msg.user').length") == 0
    page.keyboard.press("Enter")
    lengths = lengths_while(
        page,
        lambda: int(page.evaluate(LAST_REPLY_LENGTH)),
        lambda: bool(shadow(page, "return !!root.querySelector('.msg.assistant.done')")),
    )
    assert len(lengths) >= 5, lengths  # progressive, not all at once
    reply = shadow(page, "return root.querySelector('.msg.assistant.done .body').textContent")
    assert normal(reply) == normal(f"first line {words}")
    assert [normal(a) for a in page.evaluate("() => window.__announced")] == [normal(reply)]

    page.keyboard.type("again please")
    page.keyboard.press("Enter")
    wait_replies(page, 2)
    announced = page.evaluate("() => window.__announced")
    assert len(announced) == 2 and normal(announced[1]) == "again please"
    assert len(responses) == 1  # the token is reused until shortly before it expires
    token = responses[0].json()
    assert token["origin"] == env.demo and token["models"] == ["drip-30"]
    # Bound to the page's origin: useless from anywhere else.
    other = post_json(
        f"{env.gateway.base_url}/chat/completions",
        {"model": "drip-30", "messages": [{"role": "user", "content": "hi"}]},
        Authorization=f"Bearer {token['token']}",
        Origin="http://evil.example",
    )
    assert other.status == 403
    page.screenshot(path=artifacts / "widget-conversation.png")

    page.keyboard.press("Escape")  # closes the panel, focus back on the launcher
    expect(launcher).to_have_attribute("aria-expanded", "false")
    assert shadow(page, "return root.activeElement.className") == "launcher"

    page.reload()
    page.locator("chatgate-chat .launcher").click()
    texts = shadow(page, "return [...root.querySelectorAll('.msg.done')].map(m => m.textContent)")
    assert [normal(t) for t in texts] == [
        normal(f"You said: first line {words}"),
        normal(f"Reply: first line {words}"),
        "You said: again please",
        "Reply: again please",
    ]
    watch.clean()

    page.locator("chatgate-chat .new").click()  # a new conversation forgets the old one
    assert shadow(page, "return root.querySelectorAll('.msg.done').length") == 0
    assert page.evaluate("() => localStorage.length") == 0


def test_an_expired_token_is_renewed_once_then_explained(
    env: Env, watch: PageWatch, artifacts: Path
) -> None:
    status, body = backend.mint_token(env.settings("echo", ttl=1), env.host)
    assert status == 200, body
    expired = json.loads(body)
    deadline = time.monotonic() + 5
    while time.time() <= expired["expires_at"] + 0.1:
        assert time.monotonic() < deadline
        time.sleep(0.05)  # polling the clock until the token has expired, bounded
    calls: Counter[str] = Counter()
    fresh = env.minting(env.settings("echo"))

    def always_expired(_body: bytes) -> tuple[int, bytes]:
        calls["always"] += 1
        return 200, json.dumps(expired).encode()

    def expired_then_fresh(body: bytes) -> tuple[int, bytes]:
        calls["renewed"] += 1
        return (200, json.dumps(expired).encode()) if calls["renewed"] == 1 else fresh(body)

    url = env.host_page("/renewed", "echo")
    env.pages["/renewed/token"] = HostPage("", handler=expired_then_fresh)
    page = watch.page
    page.goto(url)
    page.locator("chatgate-chat .launcher").click()
    page.keyboard.type("still here?")
    page.keyboard.press("Enter")
    wait_replies(page, 1)  # the widget fetched a new token and retried
    assert calls["renewed"] == 2
    assert shadow(page, "return root.querySelector('[role=alert]').textContent") == ""

    url = env.host_page("/expired", "echo")
    env.pages["/expired/token"] = HostPage("", handler=always_expired)
    page.goto(url)
    page.locator("chatgate-chat .launcher").click()
    page.keyboard.type("hello")
    page.keyboard.press("Enter")
    alert = page.locator("chatgate-chat [role=alert]")
    expect(alert).to_have_text("Your chat session has expired. Reload the page to continue.")
    assert calls["always"] == 2  # renewed once, then gave up
    # Nothing was answered: the question is back in the box, ready to send again.
    assert shadow(page, "return root.querySelector('textarea').value") == "hello"
    page.screenshot(path=artifacts / "widget-expired.png")
    watch.clean()


def test_a_failing_token_endpoint_says_chat_is_unavailable(env: Env, watch: PageWatch) -> None:
    url = env.host_page("/down", "echo")
    env.pages["/down/token"] = HostPage("", handler=lambda _body: (500, {"error": "down"}))
    page = watch.page
    page.goto(url)
    page.locator("chatgate-chat .launcher").click()
    page.keyboard.type("hello")
    page.keyboard.press("Enter")
    alert = page.locator("chatgate-chat [role=alert]")
    expect(alert).to_contain_text("Chat is unavailable right now.")
    watch.clean()


def test_strict_csp_host_no_style_leaks_and_two_widgets(
    env: Env, watch: PageWatch, artifacts: Path
) -> None:
    env.pages["/two"] = HostPage(
        host_html(
            env.gateway.url,
            "/host.css",
            [
                {
                    "token-endpoint": "/two/token",
                    "model": "echo",
                    "title": "Support",
                    "greeting": "Hi",
                },
                {"token-endpoint": "/two/token", "model": "drip-30", "title": "Sales"},
            ],
        ),
        headers={"Content-Security-Policy": backend.demo_csp(env.gateway.url)},
    )
    env.pages["/two/token"] = HostPage("", handler=env.minting(env.settings("*")))
    csp = backend.demo_csp(env.gateway.url)
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    page = watch.page
    page.goto(f"{env.host}/two")
    widgets = page.locator("chatgate-chat")
    expect(widgets).to_have_count(2)
    # async scripts run in either order: find each widget by its title
    first = widgets.filter(has=page.locator(".title", has_text="Support"))
    second = widgets.filter(has=page.locator(".title", has_text="Sales"))
    first.locator(".launcher").click()
    style = """(el, props) => {
        const s = getComputedStyle(el);
        return Object.fromEntries(props.map((p) => [p, s.getPropertyValue(p)]));
    }"""
    props = ["background-color", "color", "width", "border-top-left-radius", "padding-top"]
    launcher = first.locator(".launcher").evaluate(style, props)
    # Styled by the adopted sheet; the host's `button {… !important}` does not reach inside.
    assert launcher["background-color"] == "rgb(47, 111, 235)"
    assert launcher["color"] == "rgb(255, 255, 255)"
    assert launcher["width"] == "56px"
    greeting = first.locator(".msg.greeting").evaluate(
        style, ["color", "font-family", "letter-spacing"]
    )
    # Nor does the host's inherited text style.
    assert greeting["color"] == "rgb(31, 35, 40)"
    assert "serif" not in greeting["font-family"].replace("sans-serif", "")
    assert greeting["letter-spacing"] == "normal"
    # The widget's rules (`.launcher`, `.msg`, `p`, `button`) do not reach out either.
    host_button = page.locator("button.host").evaluate(style, props)
    assert host_button["width"] != "56px" and host_button["border-top-left-radius"] != "50%"
    host_p = page.locator("p.host").evaluate(style, ["color", "padding-top", "margin-top"])
    assert host_p == {"color": "rgb(0, 128, 0)", "padding-top": "0px", "margin-top": "16px"}
    # Two widgets on one page: stacked, not on top of each other, each with its own history.
    bottoms = [
        w.locator(".root").evaluate("(el) => getComputedStyle(el).bottom") for w in (first, second)
    ]
    assert sorted(bottoms) == ["20px", "88px"]
    page.keyboard.type("to support")
    page.keyboard.press("Enter")
    expect(first.locator(".msg.assistant.done")).to_have_count(1)
    assert second.locator(".msg").count() == 0
    keys = page.evaluate("() => Object.keys(localStorage)")
    assert len(keys) == 1 and "|echo|" in keys[0]
    page.screenshot(path=artifacts / "widget-strict-csp.png")
    assert page.evaluate("() => window.__csp") == []
    watch.clean()


def test_theming_and_placement_from_the_script_tag(env: Env, watch: PageWatch) -> None:
    url = env.host_page(
        "/themed", "echo", css="/theme.css", open="true", position="left", placeholder="Ask!"
    )
    page = watch.page
    page.goto(url)
    launcher = page.locator("chatgate-chat .launcher")
    # The host's `--chatgate-*` custom properties reach through the shadow boundary.
    expect(launcher).to_have_css("background-color", "rgb(1, 2, 3)")
    expect(page.locator("chatgate-chat .panel")).to_have_css("border-top-left-radius", "3px")
    expect(launcher).to_have_attribute("aria-expanded", "true")  # data-open
    expect(page.locator("chatgate-chat .root")).to_have_css("left", "20px")  # data-position
    expect(page.locator("chatgate-chat textarea")).to_have_attribute("placeholder", "Ask!")
    watch.clean()


def test_history_is_capped_and_trimmed_markdown_sanitised_used_up_token_renewed(
    env: Env, watch: PageWatch
) -> None:
    calls: Counter[str] = Counter()
    one_use = env.minting(env.settings("echo", max_requests=1))

    def counting(body: bytes) -> tuple[int, bytes]:
        calls["token"] += 1
        return one_use(body)

    url = env.host_page("/history", "echo", history="4")
    env.pages["/history/token"] = HostPage("", handler=counting)
    page = watch.page
    page.goto(url)
    key = f"chatgate-widget:{env.gateway.url}|echo|{url}/token"
    old = [{"role": ("user", "assistant")[i % 2], "content": f"old {i}"} for i in range(60)]
    page.evaluate("([k, v]) => localStorage.setItem(k, v)", [key, json.dumps(old)])
    page.reload()
    page.locator("chatgate-chat .launcher").click()
    expect(page.locator("chatgate-chat .msg.done")).to_have_count(50)  # the last 50
    expect(page.locator("chatgate-chat .msg.done").first).to_have_text("You said: old 10")

    text = "**bold** and <img src=x onerror=alert(1)>"
    page.keyboard.type(text)
    page.keyboard.press("Enter")
    wait_replies(page, 26)
    sent = env.fake.received[-1].body["messages"]
    assert [m["content"] for m in sent] == ["old 57", "old 58", "old 59", text]  # last 4
    reply = page.locator("chatgate-chat .msg.assistant.done .body").last
    expect(reply.locator("strong")).to_have_text("bold")  # markdown, rendered
    assert reply.locator("img").count() == 0  # raw HTML is shown as text, never parsed
    expect(reply).to_contain_text("<img src=x onerror=alert(1)>")
    stored = json.loads(page.evaluate("(k) => localStorage.getItem(k)", key))
    assert len(stored) == 50 and stored[-1] == {"role": "assistant", "content": text}

    # The token may make one request: the next message gets a new one, transparently.
    page.keyboard.type("next")
    page.keyboard.press("Enter")
    wait_replies(page, 27)
    assert calls["token"] == 2
    assert shadow(page, "return root.querySelector('[role=alert]').textContent") == ""
    watch.clean()


def test_an_unreachable_gateway_is_explained(env: Env, watch: PageWatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    csp = backend.demo_csp(env.gateway.url).replace(
        "connect-src 'self'", f"connect-src 'self' {dead}"
    )
    widget = {"token-endpoint": "/offline/token", "model": "echo", "gateway": dead}
    env.pages["/offline"] = HostPage(
        host_html(env.gateway.url, "/host.css", [widget]),
        headers={"Content-Security-Policy": csp},
    )
    env.pages["/offline/token"] = HostPage("", handler=env.minting(env.settings("echo")))
    page = watch.page
    page.goto(f"{env.host}/offline")
    page.locator("chatgate-chat .launcher").click()
    page.keyboard.type("anyone there?")
    page.keyboard.press("Enter")
    alert = page.locator("chatgate-chat [role=alert]")
    expect(alert).to_contain_text("Cannot reach the chat service.")
    watch.clean()


def test_stop_aborts_the_upstream_stream(env: Env, watch: PageWatch, artifacts: Path) -> None:
    url = env.host_page("/stop", "drip-150")
    env.pages["/stop/token"] = HostPage("", handler=env.minting(env.settings("drip-150")))
    page = watch.page
    page.goto(url)
    page.locator("chatgate-chat .launcher").click()
    words = " ".join(f"w{i}" for i in range(60))  # 9 s at 150 ms a word

    def stop_and_wait(stop: Callable[[], None]) -> None:
        before = env.fake.drips["cancelled"]
        page.keyboard.type(words)
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => ({LAST_REPLY_LENGTH})() > 6")
        stop()
        deadline = time.monotonic() + 10
        while env.fake.drips["cancelled"] == before:
            assert time.monotonic() < deadline, "the upstream stream was not cancelled"
            time.sleep(0.05)  # polling the fake upstream's counter, bounded

    stop_and_wait(lambda: page.locator("chatgate-chat .stop").click())
    expect(page.locator("chatgate-chat .send")).to_be_visible()
    expect(page.locator("chatgate-chat .stop")).to_be_hidden()
    stopped = page.locator("chatgate-chat .msg.assistant.stopped")
    expect(stopped).to_contain_text("Stopped")
    assert len(normal(stopped.locator(".body").text_content() or "")) < len(words)
    page.screenshot(path=artifacts / "widget-stopped.png")

    stop_and_wait(lambda: page.keyboard.press("Escape"))  # Escape stops a reply first
    expect(page.locator("chatgate-chat .launcher")).to_have_attribute("aria-expanded", "true")
    expect(page.locator("chatgate-chat .msg.assistant.stopped")).to_have_count(2)

    # "New conversation" mid-reply stops it too, and the old reply's remains are not kept.
    stop_and_wait(lambda: page.locator("chatgate-chat .new").click())
    expect(page.locator("chatgate-chat .stop")).to_be_hidden()
    assert page.locator("chatgate-chat .msg").count() == 0
    assert page.evaluate("() => localStorage.length") == 0
    watch.clean()


def test_rate_limited_shows_a_countdown(env: Env, watch: PageWatch, artifacts: Path) -> None:
    url = env.host_page("/limited", "echo")
    settings = backend.Settings(
        gateway=env.gateway.url, api_key=env.limited_key, model="echo", origin=env.host
    )
    env.pages["/limited/token"] = HostPage("", handler=env.minting(settings))
    page = watch.page
    page.goto(url)
    page.locator("chatgate-chat .launcher").click()
    page.keyboard.type("one")
    page.keyboard.press("Enter")
    wait_replies(page, 1)
    page.keyboard.type("two")
    page.keyboard.press("Enter")
    alert = page.locator("chatgate-chat [role=alert]")
    expect(alert).to_contain_text("Too many messages right now.")
    countdown = page.locator("chatgate-chat .countdown")
    expect(countdown).to_have_text(re.compile(r"^Try again in \d+ s$"))
    first = int((countdown.text_content() or "").split()[3])
    assert 1 < first <= 60
    expect(page.locator("chatgate-chat .send")).to_be_disabled()
    expect(countdown).to_have_text(f"Try again in {first - 1} s")  # it counts down
    assert shadow(page, "return root.querySelector('textarea').value") == "two"
    page.screenshot(path=artifacts / "widget-rate-limited.png")
    # A new conversation does not lift the limit: Send stays disabled, the countdown goes on.
    page.locator("chatgate-chat .new").click()
    expect(page.locator("chatgate-chat .msg")).to_have_count(0)
    expect(page.locator("chatgate-chat .send")).to_be_disabled()
    expect(countdown).to_have_text(re.compile(r"^Try again in \d+ s$"))
    watch.clean()


def test_a_short_lived_token_is_reused_for_most_of_its_life(env: Env, watch: PageWatch) -> None:
    calls: Counter[str] = Counter()
    short = env.minting(env.settings("echo", ttl=20))  # shorter than the 30 s margin

    def counting(body: bytes) -> tuple[int, bytes]:
        calls["token"] += 1
        return short(body)

    url = env.host_page("/short", "echo")
    env.pages["/short/token"] = HostPage("", handler=counting)
    page = watch.page
    page.goto(url)
    page.locator("chatgate-chat .launcher").click()
    for n, text in enumerate(["one", "two", "three"], start=1):
        page.keyboard.type(text)
        page.keyboard.press("Enter")
        wait_replies(page, n)
    assert calls["token"] == 1  # not one token per message
    watch.clean()


def test_a_long_history_still_fits_a_small_model(env: Env, watch: PageWatch) -> None:
    url = env.host_page("/tiny", "tiny")
    env.pages["/tiny/token"] = HostPage("", handler=env.minting(env.settings("tiny")))
    page = watch.page
    page.goto(url)
    key = f"chatgate-widget:{env.gateway.url}|tiny|{url}/token"
    words = " ".join(f"word{i}" for i in range(40))
    old = [{"role": ("user", "assistant")[i % 2], "content": f"{i} {words}"} for i in range(16)]
    page.evaluate("([k, v]) => localStorage.setItem(k, v)", [key, json.dumps(old)])
    page.reload()
    page.locator("chatgate-chat .launcher").click()
    expect(page.locator("chatgate-chat .msg.done")).to_have_count(16)
    page.keyboard.type("still there?")
    page.keyboard.press("Enter")
    page.wait_for_function(  # an answer, or an alert (e.g. "This conversation is too long")
        f"() => {SHADOW}.querySelectorAll('.msg.assistant.done').length >= 9"
        f" || {SHADOW}.querySelector('[role=alert]').textContent !== ''"
    )
    assert shadow(page, "return root.querySelector('[role=alert]').textContent") == ""
    reply = page.locator("chatgate-chat .msg.assistant.done .body").last
    expect(reply).to_have_text("still there?")
    assert shadow(page, "return root.querySelector('[role=alert]').textContent") == ""
    sent = env.fake.received[-1].body["messages"]
    assert sent[-1]["content"] == "still there?" and len(sent) < 17  # the oldest turns dropped
    watch.clean()


def test_the_bundle_leaves_no_globals_and_may_load_in_head(env: Env, watch: PageWatch) -> None:
    env.pages["/globals"] = HostPage(
        host_html(
            env.gateway.url, "/host.css", [{"token-endpoint": "/t", "model": "echo"}], in_head=True
        ),
        headers={"Content-Security-Policy": backend.demo_csp(env.gateway.url)},
    )
    url = f"{env.host}/globals"
    page = watch.page
    page.add_init_script("window.__names = Object.getOwnPropertyNames(window);")
    page.goto(url)
    expect(page.locator("chatgate-chat .launcher")).to_be_visible()
    added = page.evaluate(
        "() => Object.getOwnPropertyNames(window)"
        ".filter((n) => n !== '__names' && !window.__names.includes(n))"
    )
    assert added == []
    assert (
        page.evaluate("() => [typeof marked, typeof DOMPurify, typeof chatgateCore, typeof core]")
        == ["undefined"] * 4
    )
    watch.clean()


def test_the_embedded_model_streams_into_the_widget(
    env: Env, watch: PageWatch, artifacts: Path
) -> None:
    model = "smollm2-135m-instruct"
    url = env.host_page("/smollm2", model, open="true")
    env.pages["/smollm2/token"] = HostPage(
        "", handler=env.minting(env.settings(model, max_tokens=48))
    )
    page = watch.page
    page.goto(url)
    page.evaluate(OBSERVE_ANNOUNCEMENTS)
    page.locator("chatgate-chat textarea").fill("Tell me about the sea in a few sentences.")
    page.locator("chatgate-chat .send").click()
    lengths = lengths_while(
        page,
        lambda: int(page.evaluate(LAST_REPLY_LENGTH)),
        lambda: bool(shadow(page, "return !!root.querySelector('.msg.assistant.done')")),
    )
    assert len(lengths) >= 3, lengths
    assert lengths[-1] > 20
    assert len(page.evaluate("() => window.__announced")) == 1
    page.screenshot(path=artifacts / "widget-smollm2.png")
    watch.clean()


def test_the_example_backend_hands_tokens_only_to_its_own_origin(env: Env) -> None:
    def token(base: str, **headers: str) -> tuple[int, Any]:
        answer = raw(f"{base}/token", method="POST", body=b"{}", headers=headers)
        return answer.status, answer.json()

    settings = backend.Settings(gateway=env.gateway.url, api_key=env.key, model="echo")
    for configured in (None, "https://app.example"):
        server = backend.make_server(replace(settings, origin=configured), 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            base = f"http://127.0.0.1:{port}"
            own = configured or f"http://localhost:{port}"  # --origin, else localhost:PORT
            # The Host header is the client's to choose: it does not make an origin "own".
            status, body = token(base, Host="evil.example", Origin="http://evil.example")
            assert status == 403, body
            # Browsers send Origin with every POST: a request without it is not a page of ours.
            status, body = token(base)
            assert status == 403, body
            status, body = token(base, Origin=f"http://127.0.0.1:{port}")
            assert status == 403, body
            status, body = token(base, Origin=own)
            assert status == 200, body
            assert body["origin"] == own
        finally:
            server.shutdown()
            server.server_close()
