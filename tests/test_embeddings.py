"""``POST /v1/embeddings``: the embedded all-MiniLM-L6-v2 against vectors computed once with
PyTorch + transformers (tests/data/minilm-reference.json), through the official SDK with its
defaults (base64), floats, token arrays, ``dimensions``, errors, and an upstream passed through."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from chatgate.tokenizers import encoding_for
from tests.fake_upstream import FakeUpstream
from tests.support import Gateway, assert_openai_shape, post_json, start_gateway

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm-reference.json").read_text())
ITEMS = REFERENCE["items"]
MODEL = "all-minilm-l6-v2"


def cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_sdk_default_matches_the_reference(client: openai.OpenAI) -> None:
    # The SDK asks for base64 unless told otherwise and decodes it with NumPy: peers returned
    # vectors a quarter of their width here. Every vector must keep all 384 dimensions.
    result = client.embeddings.create(model=MODEL, input=[item["input"] for item in ITEMS])
    assert [d.index for d in result.data] == list(range(len(ITEMS)))
    for item, data in zip(ITEMS, result.data, strict=True):
        assert len(data.embedding) == REFERENCE["dimensions"] == 384
        assert cosine(data.embedding, item["embedding"]) >= 0.999, item["input"][:40]
    assert result.usage.prompt_tokens == sum(item["tokens"] for item in ITEMS)
    assert result.usage.total_tokens == result.usage.prompt_tokens
    assert result.model == MODEL


def test_float_and_base64_carry_the_same_vector(gateway: Gateway) -> None:
    text = ITEMS[2]["input"]
    floats = post_json(f"{gateway.base_url}/embeddings", {"model": MODEL, "input": text})
    assert floats.status == 200, floats.body
    assert_openai_shape(floats.json(), "CreateEmbeddingResponse")
    encoded = post_json(
        f"{gateway.base_url}/embeddings",
        {"model": MODEL, "input": text, "encoding_format": "base64"},
    )
    # (OpenAI's schema types `embedding` as an array only; base64 answers carry a string.)
    assert isinstance(encoded.json()["data"][0]["embedding"], str)
    as_float = np.array(floats.json()["data"][0]["embedding"], dtype=np.float32)
    decoded = np.frombuffer(base64.b64decode(encoded.json()["data"][0]["embedding"]), "<f4")
    assert decoded.shape == (384,)
    np.testing.assert_allclose(decoded, as_float, rtol=0, atol=1e-7)
    assert cosine(as_float, ITEMS[2]["embedding"]) >= 0.999
    assert floats.json()["usage"] == {"prompt_tokens": 13, "total_tokens": 13}


def test_token_arrays_are_openai_token_ids(client: openai.OpenAI) -> None:
    # LangChain's OpenAIEmbeddings sends cl100k_base ids by default: they mean the same text.
    encoding = encoding_for("cl100k_base")  # equal to tiktoken's (tests/test_tokenizers.py)
    texts = [ITEMS[0]["input"], ITEMS[3]["input"]]
    ids = [encoding.encode_ordinary(t) for t in texts]
    by_tokens = client.embeddings.create(model=MODEL, input=ids, encoding_format="float")
    for text_item, data in zip((ITEMS[0], ITEMS[3]), by_tokens.data, strict=True):
        assert cosine(data.embedding, text_item["embedding"]) >= 0.999
    single = client.embeddings.create(model=MODEL, input=ids[0], encoding_format="float")
    assert len(single.data) == 1
    assert cosine(single.data[0].embedding, ITEMS[0]["embedding"]) >= 0.999


def test_dimensions_shorten_and_renormalise(client: openai.OpenAI) -> None:
    full = np.array(client.embeddings.create(model=MODEL, input="hello").data[0].embedding)
    short = np.array(
        client.embeddings.create(model=MODEL, input="hello", dimensions=64).data[0].embedding
    )
    assert short.shape == (64,)
    assert np.linalg.norm(short) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-6)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": MODEL, "input": ""}, 400, "input"),
        ({"model": MODEL, "input": []}, 400, "input"),
        ({"model": MODEL, "input": ["ok", ""]}, 400, "input"),
        ({"model": MODEL, "input": ["ok", 3]}, 400, "input"),
        ({"model": MODEL, "input": [[1, 2], [-1]]}, 400, "input"),
        ({"model": MODEL, "input": [[1, 2], [10_000_000]]}, 400, "input"),
        ({"model": MODEL, "input": ["x"] * 2049}, 400, "input"),
        ({"model": MODEL}, 400, "input"),
        ({"input": "hello"}, 400, "model"),
        ({"model": MODEL, "input": "hi", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"model": MODEL, "input": "hi", "dimensions": 0}, 400, "dimensions"),
        ({"model": MODEL, "input": "hi", "dimensions": 385}, 400, "dimensions"),
        ({"model": MODEL, "input": "hi", "dimensions": True}, 400, "dimensions"),
        ({"model": "no-such-model", "input": "hi"}, 404, "model"),
    ],
)
def test_bad_requests_get_openai_errors(
    gateway: Gateway, body: dict[str, Any], status: int, param: str
) -> None:
    response = post_json(f"{gateway.base_url}/embeddings", body)
    assert response.status == status, response.body
    assert_openai_shape(response.json(), "ErrorResponse")
    assert response.json()["error"]["param"] == param


def test_the_model_is_listed(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list().data]
    assert MODEL in ids
    assert client.models.retrieve("all-MiniLM-L6-v2").id == "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def upstream_gateway(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Gateway, FakeUpstream]]:
    fake = FakeUpstream()
    fake.start()
    config = {
        "embedding_models": [
            {"name": "text-embedding-3-small", "provider": "openai_compat",
             "base_url": fake.base_url, "upstream_model": "fake-embed",
             "api_key_env": "EMBED_KEY"},
            {"name": "refusing", "provider": "openai_compat", "base_url": fake.base_url,
             "upstream_model": "error-400"},
        ],
    }  # fmt: skip
    server = start_gateway(
        tmp_path_factory.mktemp("embed-upstream"),
        config=json.dumps(config),
        env={"EMBED_KEY": "sk-embed-upstream-secret"},
    )
    yield server, fake
    server.stop()
    fake.stop()


def test_upstream_embeddings_pass_through(upstream_gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, fake = upstream_gateway
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    result = client.embeddings.create(
        model="text-embedding-3-small", input=["alpha beta", "gamma"], user="u-7"
    )
    asked = fake.received[-1]
    assert asked.body["model"] == "fake-embed"
    assert asked.body["input"] == ["alpha beta", "gamma"]
    assert asked.body["user"] == "u-7"
    assert asked.headers["Authorization"] == "Bearer sk-embed-upstream-secret"
    # The fake answers in reverse order; the gateway returns them by index.
    assert [len(d.embedding) for d in result.data] == [8, 8]
    seed = b"alpha be"
    expected = [((b * (i + 1)) % 97) / 97 for i, b in enumerate(seed)]
    np.testing.assert_allclose(result.data[0].embedding, expected, atol=1e-6)
    assert result.usage.prompt_tokens == 3
    assert result.model == "text-embedding-3-small"
    floats = client.embeddings.create(
        model="text-embedding-3-small", input="gamma", encoding_format="float", dimensions=4
    )
    assert fake.received[-1].body["dimensions"] == 4
    assert len(floats.data[0].embedding) == 8  # what the upstream chose to send
    assert "text-embedding-3-small" in [m.id for m in client.models.list().data]


def test_upstream_errors_keep_their_shape(upstream_gateway: tuple[Gateway, FakeUpstream]) -> None:
    server, _ = upstream_gateway
    response = post_json(f"{server.base_url}/embeddings", {"model": "refusing", "input": "x"})
    assert response.status == 400
    assert_openai_shape(response.json(), "ErrorResponse")
    assert response.json()["error"]["param"] == "input"


def test_the_encoder_loads_when_the_server_starts(tmp_path: Path) -> None:
    """Not on the first request (which would wait seconds for the graph to be built)."""
    server = start_gateway(tmp_path)
    try:
        assert "embedding model `all-minilm-l6-v2` loaded" in server.log_with(
            "embedding model `all-minilm-l6-v2` loaded", timeout=60
        )
        assert '"endpoint":"/v1/embeddings"' not in server.log()  # no request asked for it
    finally:
        server.stop()
