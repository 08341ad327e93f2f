"""Ephemeral browser tokens: minted server-side from a key, narrow, short-lived; and CORS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.support import MASTER, Gateway, post_json, raw, start_gateway
from tests.test_auth import HI, MODEL, admin, create_key


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = start_gateway(
        tmp_path_factory.mktemp("tokens"),
        env={
            "CHATGATE_MASTER_KEY": MASTER,
            "CHATGATE_AUTH__REVOCATION_POLL_INTERVAL": "0.05",
            "CHATGATE_CORS__ALLOW_ORIGINS": '["https://app.example"]',
        },
    )
    yield server
    server.stop()


def mint(gateway: Gateway, key: str, **fields: Any) -> Any:
    return post_json(f"{gateway.base_url}/tokens", fields, Authorization=f"Bearer {key}")


def token_for(gateway: Gateway, **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    key = create_key(gateway)
    response = mint(gateway, key["secret"], **fields)
    assert response.status == 200, response.body
    token: dict[str, Any] = response.json()
    return key, token


def client(gateway: Gateway, token: str, origin: str | None = None) -> openai.OpenAI:
    headers = {"Origin": origin} if origin else None
    return openai.OpenAI(
        base_url=gateway.base_url, api_key=token, max_retries=0, default_headers=headers
    )


def test_token_works_for_chat_and_models(secured: Gateway) -> None:
    key, token = token_for(secured)
    assert token["object"] == "chatgate.token"
    assert token["key_id"] == key["id"]
    assert 590 <= token["expires_at"] - time.time() <= 600
    browser = client(secured, token["token"])
    assert browser.chat.completions.create(model=MODEL, messages=HI, max_tokens=2).choices
    assert [m.id for m in browser.models.list().data] == [MODEL, "all-minilm-l6-v2"]


def test_token_model_scope(secured: Gateway) -> None:
    _, token = token_for(secured, models=["gpt-4o-mini"])
    with pytest.raises(openai.PermissionDeniedError):
        client(secured, token["token"]).chat.completions.create(
            model=MODEL, messages=HI, max_tokens=2
        )


def test_token_cannot_widen_its_keys_models(secured: Gateway) -> None:
    key = create_key(secured, allowed_models=["smollm2*"])
    response = mint(secured, key["secret"], models=["gpt-4o"])
    assert response.status == 403


def test_token_max_tokens_cap(secured: Gateway) -> None:
    _, token = token_for(secured, max_tokens=3)
    browser = client(secured, token["token"])
    capped = browser.chat.completions.create(
        model=MODEL, messages=HI, logit_bias={"2": -100}
    )  # no max_tokens: the cap applies
    assert capped.usage is not None and capped.usage.completion_tokens == 3
    with pytest.raises(openai.PermissionDeniedError) as caught:
        browser.chat.completions.create(model=MODEL, messages=HI, max_tokens=50)
    assert caught.value.body["param"] == "max_tokens"  # type: ignore[index]


def test_token_origin(secured: Gateway) -> None:
    _, token = token_for(secured, origin="https://app.example")
    with pytest.raises(openai.PermissionDeniedError):
        client(secured, token["token"]).models.list()
    with pytest.raises(openai.PermissionDeniedError):
        client(secured, token["token"], origin="https://evil.example").models.list()
    assert client(secured, token["token"], origin="https://app.example").models.list().data


def test_token_request_limit(secured: Gateway) -> None:
    _, token = token_for(secured, max_requests=2)
    browser = client(secured, token["token"])
    browser.models.list()
    browser.models.list()
    with pytest.raises(openai.RateLimitError):
        browser.models.list()


def test_token_cannot_mint_tokens_or_use_admin(secured: Gateway) -> None:
    _, token = token_for(secured)
    assert mint(secured, token["token"]).status == 403
    assert admin(secured, "GET", "/admin/keys", key=token["token"]).status == 403


def test_master_key_cannot_mint(secured: Gateway) -> None:
    assert mint(secured, MASTER).status == 403


def test_token_ttl_bounds(secured: Gateway) -> None:
    key = create_key(secured)
    assert mint(secured, key["secret"], ttl=999_999).status == 403
    assert mint(secured, key["secret"], ttl=0).status == 400
    assert mint(secured, key["secret"], origin="javascript:alert(1)").status == 400


def test_expired_token_is_401(secured: Gateway) -> None:
    _, token = token_for(secured, ttl=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = raw(
            f"{secured.base_url}/models", headers={"Authorization": f"Bearer {token['token']}"}
        )
        if response.status == 401:
            break
        time.sleep(0.1)  # polling for the expiry to pass, bounded
    assert response.status == 401
    assert response.json()["error"]["code"] == "token_expired"


def test_token_dies_with_its_key(secured: Gateway) -> None:
    key, token = token_for(secured)
    browser = client(secured, token["token"])
    browser.models.list()
    raw(
        f"{secured.url}/admin/keys/{key['id']}",
        method="DELETE",
        headers={"Authorization": f"Bearer {MASTER}"},
    )
    with pytest.raises(openai.AuthenticationError):
        browser.models.list()


def test_tampered_token_is_401(secured: Gateway) -> None:
    _, token = token_for(secured)
    header, payload, signature = token["token"].split(".")
    forged = f"{header}.{payload}.{signature[:-2]}AA"
    response = raw(f"{secured.base_url}/models", headers={"Authorization": f"Bearer {forged}"})
    assert response.status == 401


def test_cors_preflight_for_an_allowed_origin(secured: Gateway) -> None:
    response = raw(
        f"{secured.base_url}/chat/completions",
        method="OPTIONS",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    # A browser page may read what it needs to wait out a 429, and the request id.
    answer = raw(f"{secured.base_url}/models", headers={"Origin": "https://app.example"})
    exposed = answer.headers["access-control-expose-headers"].lower().split(", ")
    assert {"retry-after", "x-ratelimit-remaining-requests", "x-request-id"} <= set(exposed)
    denied = raw(
        f"{secured.base_url}/chat/completions",
        method="OPTIONS",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in denied.headers


def test_cors_is_off_by_default(gateway: Gateway) -> None:
    response = raw(f"{gateway.base_url}/models", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers
