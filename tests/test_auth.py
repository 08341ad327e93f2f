"""Virtual keys over HTTP: the admin API, request authentication and scopes, audit, bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support import MASTER, Gateway, RawResponse, post_json, raw, start_gateway

MODEL = "smollm2-135m-instruct"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = start_gateway(
        tmp_path_factory.mktemp("secured"),
        env={
            "CHATGATE_MASTER_KEY": MASTER,
            "CHATGATE_AUTH__REVOCATION_POLL_INTERVAL": "0.05",
        },
    )
    yield server
    server.stop()


def admin(gateway: Gateway, method: str, path: str, payload: Any = None, key: str = MASTER) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    if payload is None:
        return raw(gateway.url + path, method=method, headers=headers)
    return post_json(gateway.url + path, payload, **headers) if method == "POST" else None


def create_key(gateway: Gateway, **fields: Any) -> dict[str, Any]:
    response = admin(gateway, "POST", "/admin/keys", {"name": "test", **fields})
    assert response.status == 201, response.body
    body: dict[str, Any] = response.json()
    return body


def sdk(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0)


def chat(gateway: Gateway, key: str, **kwargs: Any) -> Any:
    kwargs.setdefault("model", MODEL)
    return sdk(gateway, key).chat.completions.create(messages=HI, max_tokens=2, **kwargs)


def assert_401(response: RawResponse) -> None:
    assert response.status == 401, response.body
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == "invalid_api_key"


def test_key_is_created_with_a_secret_shown_once(secured: Gateway) -> None:
    key = create_key(secured, owner="team-a", metadata={"env": "test"})
    assert key["secret"].startswith("cg-") and len(key["secret"]) == 46
    assert key["id"].startswith("key_")
    shown = admin(secured, "GET", f"/admin/keys/{key['id']}").json()
    assert "secret" not in shown
    assert shown["owner"] == "team-a" and shown["metadata"] == {"env": "test"}
    listed = admin(secured, "GET", "/admin/keys").json()
    assert key["id"] in [k["id"] for k in listed["data"]]
    assert key["secret"] not in admin(secured, "GET", "/admin/keys").body.decode()


def test_a_key_authenticates_requests(secured: Gateway) -> None:
    key = create_key(secured)
    assert chat(secured, key["secret"]).choices[0].message.content is not None
    listed = [m.id for m in sdk(secured, key["secret"]).models.list().data]
    assert listed == [MODEL, "all-minilm-l6-v2"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer cg-" + "A" * 43,
        "Bearer not-a-key",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer two words",
        "bearer " + "x" * 5000,
    ],
)
def test_missing_wrong_or_malformed_credentials_are_401(
    secured: Gateway, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_401(post_json(f"{secured.base_url}/chat/completions", {"model": MODEL}, **headers))
    assert_401(raw(f"{secured.base_url}/models", headers=headers))


def test_health_stays_public(secured: Gateway) -> None:
    assert raw(f"{secured.url}/health").status == 200


def test_revoked_key_is_rejected(secured: Gateway) -> None:
    key = create_key(secured)
    chat(secured, key["secret"])
    revoked = raw(
        f"{secured.url}/admin/keys/{key['id']}",
        method="DELETE",
        headers={"Authorization": f"Bearer {MASTER}"},
    )
    assert revoked.status == 200 and revoked.json()["revoked_at"] is not None
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(secured, key["secret"])
    assert caught.value.code == "invalid_api_key"


def test_rotation_with_grace_keeps_both_secrets_then_without_grace_drops_old(
    secured: Gateway,
) -> None:
    key = create_key(secured)
    rotated = admin(
        secured, "POST", f"/admin/keys/{key['id']}/rotate", {"grace_period": 3600}
    ).json()
    assert rotated["secret"] != key["secret"] and rotated["id"] == key["id"]
    chat(secured, key["secret"])
    chat(secured, rotated["secret"])
    again = admin(secured, "POST", f"/admin/keys/{key['id']}/rotate", {"grace_period": 0}).json()
    with pytest.raises(openai.AuthenticationError):
        chat(secured, key["secret"])
    with pytest.raises(openai.AuthenticationError):
        chat(secured, rotated["secret"])
    chat(secured, again["secret"])


def test_expired_key_is_rejected(secured: Gateway) -> None:
    key = create_key(secured, expires_in=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = raw(
            f"{secured.base_url}/models", headers={"Authorization": f"Bearer {key['secret']}"}
        )
        if response.status == 401:
            break
        time.sleep(0.1)  # polling for the expiry to pass, bounded
    assert_401(response)
    assert "expired" in response.json()["error"]["message"]


def test_model_scope(secured: Gateway) -> None:
    only_gpt = create_key(secured, allowed_models=["gpt-4o*"])
    with pytest.raises(openai.PermissionDeniedError) as caught:
        chat(secured, only_gpt["secret"])
    assert caught.value.code == "permission_denied"
    assert sdk(secured, only_gpt["secret"]).models.list().data == []
    with pytest.raises(openai.NotFoundError):
        sdk(secured, only_gpt["secret"]).models.retrieve(MODEL)
    smol = create_key(secured, allowed_models=["smollm2*"])
    assert chat(secured, smol["secret"]).choices
    assert chat(secured, smol["secret"], model="smollm2").choices


def test_endpoint_scope(secured: Gateway) -> None:
    models_only = create_key(secured, allowed_endpoints=["models"])
    assert sdk(secured, models_only["secret"]).models.list().data
    with pytest.raises(openai.PermissionDeniedError):
        chat(secured, models_only["secret"])


def test_admin_api_needs_the_master_key(secured: Gateway) -> None:
    key = create_key(secured)
    assert admin(secured, "GET", "/admin/keys", key=key["secret"]).status == 403
    assert_401(raw(f"{secured.url}/admin/keys"))
    assert admin(secured, "POST", "/admin/keys", {"name": "x"}, key=key["secret"]).status == 403


def test_master_key_may_call_the_api(secured: Gateway) -> None:
    assert chat(secured, MASTER).choices


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "expires_at": 1000.0}, None),
        ({"name": "x", "allowed_endpoints": ["audio"]}, "allowed_endpoints"),
        ({"name": "x", "allowed_models": "gpt-4o"}, "allowed_models"),
        ({"name": "x", "colour": "blue"}, "colour"),
        ({"name": "x", "expires_in": -5}, "expires_in"),
    ],
)
def test_bad_key_requests_are_400(
    secured: Gateway, payload: dict[str, Any], param: str | None
) -> None:
    response = admin(secured, "POST", "/admin/keys", payload)
    assert response.status == 400, response.body
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param:
        assert error["param"] == param


def test_awkward_names_are_stored_verbatim(secured: Gateway) -> None:
    name = 'Robert\'); DROP TABLE api_keys;-- "quoted" 🚀'
    key = create_key(secured, name=name)
    assert admin(secured, "GET", f"/admin/keys/{key['id']}").json()["name"] == name
    assert chat(secured, key["secret"]).choices


def test_unknown_key_ids_are_404(secured: Gateway) -> None:
    headers = {"Authorization": f"Bearer {MASTER}"}
    for method, path in [
        ("GET", "/admin/keys/key_nope"),
        ("DELETE", "/admin/keys/key_nope"),
    ]:
        response = raw(secured.url + path, method=method, headers=headers)
        assert response.status == 404
        assert response.json()["error"]["code"] == "key_not_found"
    rotate = admin(secured, "POST", "/admin/keys/key_nope/rotate", {"grace_period": 1})
    assert rotate.status == 404


def test_invalid_json_to_admin_is_400(secured: Gateway) -> None:
    response = raw(
        f"{secured.url}/admin/keys",
        method="POST",
        body=b"{nope",
        headers={"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"},
    )
    assert response.status == 400


def test_oversized_header_is_refused_without_harm(secured: Gateway) -> None:
    try:
        response = raw(
            f"{secured.base_url}/models", headers={"Authorization": "Bearer " + "x" * 200_000}
        )
        assert 400 <= response.status < 500
    except OSError:
        pass  # the server may close the connection on a header this large
    assert raw(f"{secured.url}/health").status == 200


def test_audit_lists_admin_actions(secured: Gateway) -> None:
    key = create_key(secured, name="audited")
    admin(secured, "POST", f"/admin/keys/{key['id']}/rotate", {"grace_period": 0})
    raw(
        f"{secured.url}/admin/keys/{key['id']}",
        method="DELETE",
        headers={"Authorization": f"Bearer {MASTER}"},
    )
    entries = admin(secured, "GET", "/admin/audit?limit=10").json()["data"]
    mine = [(e["actor"], e["action"]) for e in entries if e["target"] == key["id"]]
    assert mine == [("master", "key.revoke"), ("master", "key.rotate"), ("master", "key.create")]


def test_last_used_is_recorded_off_the_request_path(secured: Gateway) -> None:
    key = create_key(secured)
    assert key["last_used_at"] is None
    sdk(secured, key["secret"]).models.list()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        shown = admin(secured, "GET", f"/admin/keys/{key['id']}").json()
        if shown["last_used_at"] is not None:
            break
        time.sleep(0.1)  # polling for the batched write, bounded
    assert shown["last_used_at"] is not None


def test_no_secret_reaches_the_log(secured: Gateway) -> None:
    key = create_key(secured)
    rotated = admin(secured, "POST", f"/admin/keys/{key['id']}/rotate", {"grace_period": 5})
    secrets = [MASTER, key["secret"], rotated.json()["secret"]]
    for secret in secrets[1:]:
        chat(secured, secret)
    log = secured.log()
    assert all(secret not in log for secret in secrets)
