from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support import Gateway, start_gateway


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """chatgate on the embedded model, with no configuration at all."""
    server = start_gateway(tmp_path_factory.mktemp("gateway"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


@pytest.fixture
def async_client(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(__file__).parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
