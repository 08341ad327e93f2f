"""/v1/models, /health, the OpenAPI document and request ids."""

from __future__ import annotations

import openai
import pytest

from tests.support import Gateway, assert_openai_shape, post_json, raw


def test_models_list_has_the_embedded_model(client: openai.OpenAI, gateway: Gateway) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["smollm2-135m-instruct", "all-minilm-l6-v2"]
    body = raw(f"{gateway.base_url}/models").json()
    assert_openai_shape(body, "ListModelsResponse")
    assert isinstance(body["data"][0]["created"], int)


def test_model_retrieve_by_name_and_alias(client: openai.OpenAI, gateway: Gateway) -> None:
    assert client.models.retrieve("smollm2-135m-instruct").id == "smollm2-135m-instruct"
    assert client.models.retrieve("smollm2").id == "smollm2"
    assert_openai_shape(raw(f"{gateway.base_url}/models/smollm2").json(), "Model")


def test_unknown_model_is_404_model_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-nonexistent")
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="gpt-nonexistent", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "model_not_found"
    assert caught.value.body["param"] == "model"  # type: ignore[index]


def test_health_is_200_when_ready(gateway: Gateway) -> None:
    response = raw(f"{gateway.url}/health")
    assert response.status == 200
    assert response.json()["models"] == {
        "smollm2-135m-instruct": "ready",
        "all-minilm-l6-v2": "ready",
    }


def test_openapi_document_is_served(gateway: Gateway) -> None:
    document = raw(f"{gateway.url}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    assert {"/v1/chat/completions", "/v1/models", "/v1/models/{model}", "/health"} <= set(
        document["paths"]
    )
    schemas = document["components"]["schemas"]
    assert "messages" in schemas["ChatCompletionRequest"]["properties"]


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/v1/models", None),
        ("GET", "/health", None),
        ("GET", "/v1/nowhere", None),
        ("POST", "/v1/chat/completions", {"model": "smollm2"}),
    ],
)
def test_every_response_carries_a_request_id(
    gateway: Gateway, method: str, path: str, payload: object
) -> None:
    if payload is None:
        response = raw(gateway.url + path, method=method)
    else:
        response = post_json(gateway.url + path, payload)
    assert response.headers["x-request-id"]
    assert "total;dur=" in response.headers["server-timing"]


def test_request_ids_are_the_gateways_and_the_clients_is_echoed(gateway: Gateway) -> None:
    for header in ("X-Client-Request-Id", "X-Request-Id"):
        response = raw(f"{gateway.base_url}/models", headers={header: "trace-123"})
        assert response.headers["x-request-id"].startswith("req_")  # never the client's
        assert len(response.headers["x-request-id"]) == len("req_") + 32
        assert response.headers["x-client-request-id"] == "trace-123"
    unsafe = raw(f"{gateway.base_url}/models", headers={"X-Request-Id": "bad id\twith tab"})
    assert unsafe.headers["x-request-id"].startswith("req_")
    assert "x-client-request-id" not in unsafe.headers
    ids = {raw(f"{gateway.base_url}/models").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20
