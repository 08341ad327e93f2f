"""Prompt templates end to end: a folder of template files loaded at start, versions pushed
through the admin API, chat requests that reference a template with the official SDK, labels
moved by compare-and-swap with history and rollback, every unknown name a 400 that names it,
and the template's version and label in the request log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fake_upstream import FakeUpstream
from tests.support import MASTER, Gateway, post_json, raw, start_gateway

ADMIN = {"Authorization": f"Bearer {MASTER}"}

SUPPORT = """\
description: Answers a customer
labels: [production]
variables:
  type: object
  properties:
    customer: {type: string}
    tier: {type: string, enum: [free, pro], default: free}
    topics: {type: array, items: {type: string}, default: []}
  required: [customer]
parameters:
  temperature: 0.2
  max_tokens: 50
messages:
  - role: system
    content: |-
      You help {{ customer }}{% if tier == "pro" %} (a pro customer){% endif %}.
      {%- for topic in topics %} Topic {{ loop.index }}: {{ topic }}.{% endfor %}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, FakeUpstream]]:
    fake = FakeUpstream()
    fake.start()
    root = tmp_path_factory.mktemp("prompts")
    folder = root / "templates"
    folder.mkdir()
    (folder / "support.yaml").write_text(SUPPORT)
    config = (
        f"prompts: {{directory: {folder}}}\n"
        "observability: {flush_interval: 0.05}\n"
        "models:\n  - name: echo\n    provider: openai_compat\n"
        f"    base_url: {fake.base_url}\n"
    )
    server = start_gateway(root, config=config, env={"CHATGATE_MASTER_KEY": MASTER})
    yield server, fake
    server.stop()
    fake.stop()


@pytest.fixture(scope="module")
def client(gateway: tuple[Gateway, FakeUpstream]) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway[0].base_url, api_key=MASTER, max_retries=0)


def push(server: Gateway, prompt_id: str, **definition: Any) -> Any:
    return post_json(f"{server.url}/admin/prompts", {"id": prompt_id, **definition}, **ADMIN)


def move(server: Gateway, prompt_id: str, label: str, **body: Any) -> Any:
    return raw(
        f"{server.url}/admin/prompts/{prompt_id}/labels/{label}",
        method="PUT",
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **ADMIN},
    )


def last_upstream_body(fake: FakeUpstream) -> dict[str, Any]:
    return fake.received[-1].body


def test_folder_templates_are_loaded_with_their_labels(
    gateway: tuple[Gateway, FakeUpstream],
) -> None:
    server, _ = gateway
    body = raw(f"{server.url}/admin/prompts/support", headers=ADMIN).json()
    assert body["labels"] == {"latest": 1, "production": 1}
    assert [v["version"] for v in body["versions"]] == [1]
    assert body["versions"][0]["definition"]["description"] == "Answers a customer"


def test_a_request_renders_the_template_through_the_sdk(
    gateway: tuple[Gateway, FakeUpstream], client: openai.OpenAI
) -> None:
    _, fake = gateway
    reply = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "Where is my order?"}],
        extra_body={
            "prompt": {
                "id": "support",
                "variables": {"customer": "Ada", "tier": "pro", "topics": ["billing", "refunds"]},
            }
        },
    )
    assert reply.choices[0].message.content == "Where is my order?"
    sent = last_upstream_body(fake)
    assert "prompt" not in sent  # our extension never goes upstream
    assert sent["messages"] == [
        {
            "role": "system",
            "content": "You help Ada (a pro customer). Topic 1: billing. Topic 2: refunds.",
        },
        {"role": "user", "content": "Where is my order?"},
    ]
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 50  # the template's defaults


def test_the_requests_own_parameters_win_and_messages_may_be_omitted(
    gateway: tuple[Gateway, FakeUpstream], client: openai.OpenAI
) -> None:
    _, fake = gateway
    client.chat.completions.create(
        model="echo",
        messages=[],
        temperature=1.5,
        extra_body={"prompt": {"id": "support", "version": "1", "variables": {"customer": "Bo"}}},
    )
    sent = last_upstream_body(fake)
    assert sent["messages"] == [{"role": "system", "content": "You help Bo."}]
    assert sent["temperature"] == 1.5


@pytest.mark.parametrize(
    ("reference", "param", "code"),
    [
        ({"id": "nope"}, "prompt.id", "prompt_not_found"),
        ({"id": "support", "version": 99}, "prompt.version", "prompt_version_not_found"),
        ({"id": "support", "label": "staging"}, "prompt.label", "prompt_label_not_found"),
        (
            {"id": "support", "variables": {"customer": "A", "shoe_size": 9}},
            "prompt.variables.shoe_size",
            "unknown_prompt_variable",
        ),
        ({"id": "support", "variables": {}}, "prompt.variables.customer", None),
        (
            {"id": "support", "variables": {"customer": "A", "tier": "gold"}},
            "prompt.variables.tier",
            "invalid_prompt_variables",
        ),
        ({"id": "support", "version": 1, "label": "production"}, "prompt", None),
        ({"id": "support", "colour": "red"}, "prompt.colour", None),
    ],
)
def test_every_unknown_name_is_a_400_naming_it(
    client: openai.OpenAI, reference: dict[str, Any], param: str, code: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"prompt": reference},
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code


def test_messages_are_still_required_without_a_prompt(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="echo", messages=[])
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == "messages"


def test_push_checks_the_template_and_is_idempotent(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    hello = {"messages": [{"role": "user", "content": "Hi {{ name }}"}]}
    undeclared = push(server, "hello", **hello)
    assert undeclared.status == 400
    assert undeclared.json()["error"]["param"] == "variables"
    assert "name" in undeclared.json()["error"]["message"]
    broken = push(server, "hello", messages=[{"role": "user", "content": "{% if %}"}])
    assert broken.status == 400
    assert broken.json()["error"]["param"] == "messages[0].content"
    assert push(server, "bad id!", messages=[{"role": "user", "content": "x"}]).status == 400
    typed = {**hello, "variables": {"type": "object", "properties": {"name": {"type": "string"}}}}
    first = push(server, "hello", **typed)
    assert first.status == 201 and first.json()["version"] == 1
    again = push(server, "hello", **typed)
    assert again.status == 200 and again.json()["version"] == 1  # same content, same version
    changed = push(server, "hello", **{**typed, "description": "v2"})
    assert changed.status == 201 and changed.json()["version"] == 2
    assert changed.json()["labels"] == ["latest"]


def test_labels_move_by_compare_and_swap_with_history_and_rollback(
    gateway: tuple[Gateway, FakeUpstream], client: openai.OpenAI
) -> None:
    server, fake = gateway
    for text in ("Version one says {{ x }}", "Version two says {{ x }}"):
        schema = {"type": "object", "properties": {"x": {"type": "string"}}}
        assert push(server, "flip", messages=[{"role": "system", "content": text}],
                    variables=schema).status == 201  # fmt: skip
    created = move(server, "flip", "production", version=1, expected_version=0)
    assert created.status == 200 and created.json()["previous_version"] is None
    lost = move(server, "flip", "production", version=2, expected_version=0)
    assert lost.status == 409
    assert lost.json()["error"]["code"] == "label_conflict"

    def rendered() -> str:
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "go"}],
            extra_body={"prompt": {"id": "flip", "label": "production", "variables": {"x": "y"}}},
        )
        content: str = last_upstream_body(fake)["messages"][0]["content"]
        return content

    assert rendered() == "Version one says y"
    won = move(server, "flip", "production", version=2, expected_version=1)
    assert won.status == 200 and won.json()["previous_version"] == 1
    assert rendered() == "Version two says y"  # a move through this replica applies at once
    back = post_json(f"{server.url}/admin/prompts/flip/labels/production/rollback", {}, **ADMIN)
    assert back.status == 200 and back.json()["version"] == 1
    assert rendered() == "Version one says y"
    history = raw(f"{server.url}/admin/prompts/flip/history?label=production", headers=ADMIN)
    moves = [(e["previous_version"], e["version"]) for e in history.json()["data"]]
    assert moves == [(None, 1), (1, 2), (2, 1)]
    assert move(server, "flip", "production", version=7).status == 404
    assert move(server, "flip", "Bad_Label", version=1).status == 400


def test_a_template_past_the_sandbox_caps_is_refused(
    gateway: tuple[Gateway, FakeUpstream], client: openai.OpenAI
) -> None:
    server, _ = gateway
    bomb = push(server, "bomb", messages=[{"role": "user", "content": "{{ 'a' * 10**8 }}"}])
    assert bomb.status == 201
    move(server, "bomb", "production", version=1)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="echo", messages=[], extra_body={"prompt": {"id": "bomb"}}
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "prompt_template_limit"


def test_version_and_label_reach_the_request_log(
    gateway: tuple[Gateway, FakeUpstream], client: openai.OpenAI
) -> None:
    server, _ = gateway
    for _ in range(2):
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "log me"}],
            extra_body={"prompt": {"id": "support", "variables": {"customer": "Cy"}}},
        )
    deadline = time.monotonic() + 10
    while True:
        groups = raw(f"{server.url}/admin/usage?group_by=prompt", headers=ADMIN).json()["data"]
        by_group = {g["group"]: g["requests"] for g in groups}
        if by_group.get("support@1", 0) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # polling for the batched request-log write, bounded
    assert by_group.get("support@1", 0) >= 4  # this test's two and the earlier ones


def test_render_preview(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    preview = post_json(
        f"{server.url}/admin/prompts/support/render", {"variables": {"customer": "Di"}}, **ADMIN
    ).json()
    assert preview["version"] == 1 and preview["label"] == "production"
    assert preview["messages"] == [{"role": "system", "content": "You help Di."}]


def test_admin_only(gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = gateway
    assert raw(f"{server.url}/admin/prompts").status == 401


def cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatgate", "prompts", *args],
        env={"CHATGATE_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_push_list_show_diff_label_rollback(tmp_path: Path) -> None:
    data = tmp_path / "data"
    template = tmp_path / "greet.yaml"
    template.write_text("messages:\n  - {role: system, content: Be brief.}\n")
    assert "greet\tversion 1\tnew" in cli(data, "push", str(template), "--label", "staging").stdout
    template.write_text("messages:\n  - {role: system, content: Be very brief.}\n")
    assert "version 2\tnew" in cli(data, "push", str(template)).stdout
    assert "version 2\tunchanged" in cli(data, "push", str(template)).stdout
    listing = cli(data, "list").stdout
    assert "greet" in listing and "staging=1" in listing and "latest=2" in listing
    assert "Be very brief." in cli(data, "show", "greet").stdout
    assert "Be brief." in cli(data, "show", "greet", "staging").stdout
    diff = cli(data, "diff", "greet", "1", "2").stdout
    assert "--- greet@1" in diff and "+++ greet@2" in diff
    assert "-  content: Be brief." in diff and "+  content: Be very brief." in diff
    refused = cli(data, "label", "greet", "staging", "2", "--expect", "2")
    assert refused.returncode != 0 and "points to version 1" in refused.stderr
    assert cli(data, "label", "greet", "staging", "2", "--expect", "1").returncode == 0
    assert "staging: 2 -> 1" in cli(data, "rollback", "greet", "staging").stdout
    history = cli(data, "history", "greet", "--label", "staging").stdout.splitlines()
    assert len(history) == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("messages:\n  - {role: user, content: '{{ who }}'}\n")
    failed = cli(data, "push", str(bad))
    assert failed.returncode != 0 and "who" in failed.stderr
