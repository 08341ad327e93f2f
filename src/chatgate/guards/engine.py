"""Where moderation verdicts come from: the offline rules, or an OpenAI-compatible moderation
model upstream (answers translated into the one verdict shape)."""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp

from chatgate.config import ModerationConfig, resolve_secret
from chatgate.guards.moderation import RuleModerator
from chatgate.guards.verdict import MODERATION_CATEGORIES, Verdict
from chatgate.protocol import UpstreamError
from chatgate.providers.session import upstream_session

__all__ = ["Moderator", "RulesEngine", "UpstreamEngine", "moderator_from_config"]


class Moderator(Protocol):
    model: str

    async def moderate(self, texts: list[str]) -> list[Verdict]: ...

    async def close(self) -> None: ...


class RulesEngine:
    model = "chatgate-moderation-rules"

    def __init__(self, threshold: float):
        self._rules = RuleModerator(threshold)

    async def moderate(self, texts: list[str]) -> list[Verdict]:
        return [self._rules.classify(text) for text in texts]

    async def close(self) -> None:
        return None


class UpstreamEngine:
    """``POST {base_url}/moderations`` on an OpenAI-compatible API."""

    def __init__(self, config: ModerationConfig):
        assert config.base_url is not None
        self.model = config.model
        self._url = config.base_url.rstrip("/") + "/moderations"
        key = resolve_secret(config.api_key_env, None, required=bool(config.api_key_env))
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._timeout = aiohttp.ClientTimeout(total=config.timeout)
        self._session: aiohttp.ClientSession | None = None

    async def moderate(self, texts: list[str]) -> list[Verdict]:
        if self._session is None:
            self._session = upstream_session(
                max_connections=64, connect_timeout=None, read_timeout=None
            )
        try:
            async with self._session.post(
                self._url,
                json={"model": self.model, "input": texts},
                headers=self._headers,
                timeout=self._timeout,
            ) as response:
                body: dict[str, Any] = await response.json(content_type=None)
                if response.status != 200:
                    raise UpstreamError(
                        "The moderation model failed.", status=502, code="moderation_failed"
                    )
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise UpstreamError(
                "The moderation model could not be reached.", status=502, code="moderation_failed"
            ) from exc
        return [_verdict(result) for result in body.get("results", [])]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _verdict(result: dict[str, Any]) -> Verdict:
    scores = {
        name: float(result.get("category_scores", {}).get(name) or 0.0)
        for name in MODERATION_CATEGORIES
    }
    flags = {name: bool(result.get("categories", {}).get(name)) for name in MODERATION_CATEGORIES}
    return Verdict("moderation", scores, flags)


def moderator_from_config(config: ModerationConfig) -> Moderator:
    if config.engine == "upstream":
        return UpstreamEngine(config)
    return RulesEngine(config.threshold)
