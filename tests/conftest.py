from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
from llama_cpp import Llama
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import delete

from chatgate.providers.local import default_model_path
from chatgate.state import Database
from chatgate.state.tables import StoredBodyRow
from tests.browser import launch
from tests.fake_upstream import FakeUpstream
from tests.services import postgres_database, postgres_server, redis_server
from tests.support import (
    MASTER,
    SECRET_PATTERNS,
    STARTED_LOGS,
    UPSTREAM_KEY,
    Gateway,
    start_gateway,
)


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """chatgate on the embedded model, with no configuration at all."""
    server = start_gateway(tmp_path_factory.mktemp("gateway"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for a module's browser tests (a new context per test). Module-scoped:
    Playwright's sync API keeps an event loop running while it is open, and later modules'
    ``asyncio.run`` must find none."""
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


@pytest.fixture
async def async_client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=gateway.base_url, api_key="unused", max_retries=0
    ) as client:
        yield client


@pytest.fixture(scope="session")
def vocab() -> Llama:
    """The embedded model's tokenizer alone, to check token ids against."""
    return Llama(str(default_model_path()), vocab_only=True, verbose=False)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(__file__).parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """A fake OpenAI-compatible upstream server for the module's tests."""
    fake = FakeUpstream()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    """Admin DSN of the session's PostgreSQL server (found, or started: tests/services.py)."""
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture(scope="module")
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """A fresh database for the module's tests; its SQLAlchemy URL."""
    with postgres_database(postgres_admin) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The session's Redis (found, or started: tests/services.py)."""
    with redis_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str
) -> AsyncIterator[Database]:
    """The store on each backend, migrated and empty of earlier test data."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    if request.param == "postgresql":
        url = postgres_url
    database = Database(url)
    await database.upgrade()
    await database.upgrade()  # idempotent
    async with database.session() as session:
        await session.execute(delete(StoredBodyRow))
    yield database
    await database.close()


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log() -> Iterator[None]:
    """After the whole run: no gateway log holds a key secret, token or known test secret."""
    yield
    known = [MASTER, UPSTREAM_KEY]
    for path in STARTED_LOGS:
        text = path.read_text(errors="replace") if path.exists() else ""
        assert not any(p.search(text) for p in SECRET_PATTERNS), f"a secret leaked into {path}"
        assert not any(secret in text for secret in known), f"a secret leaked into {path}"
