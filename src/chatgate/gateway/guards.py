"""The guards a gateway runs, built once from config: the moderation engine, the injection
heuristics, PII detectors per policy, and which policy applies to a request (its template's,
else its key's ``metadata.guard_policy``, else its model's, else the default)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from chatgate.config import GuardPolicy, GuardsConfig
from chatgate.gateway.auth import Principal
from chatgate.guards.engine import Moderator, moderator_from_config
from chatgate.guards.injection import InjectionDetector
from chatgate.guards.pii import PiiDetector
from chatgate.guards.verdict import MODERATION_CATEGORIES
from chatgate.protocol import ChatgateError, InvalidRequestError
from chatgate.protocol.moderations import ModerationRequest, ModerationResponse

__all__ = ["GUARD_HEADER", "MAX_MODERATION_CHARACTERS", "GuardFlags", "Guards"]

GUARD_HEADER = "x-chatgate-guard"
"""What the guards flagged before the answer started, e.g. ``pii:email, moderation:hate``."""
MAX_MODERATION_CHARACTERS = 1_000_000


@dataclass(slots=True)
class GuardFlags:
    """What guards found in one request (request log ``guard_flags``)."""

    found: list[str] = field(default_factory=list)

    def add(self, guard: str, categories: list[str]) -> None:
        for category in categories:
            flag = f"{guard}:{category}"
            if flag not in self.found:
                self.found.append(flag)

    def text(self) -> str | None:
        return ",".join(self.found)[:500] if self.found else None


class Guards:
    def __init__(self, config: GuardsConfig):
        self.config = config
        self.moderator: Moderator = moderator_from_config(config.moderation)
        self.injection = InjectionDetector()
        self._pii = {
            name: PiiDetector(policy.pii_kinds, phone_region=config.phone_region)
            for name, policy in config.policies.items()
            if policy.pii != "off"
        }

    @property
    def policy_names(self) -> frozenset[str]:
        return frozenset(self.config.policies)

    def policy(
        self, template_policy: str | None, principal: Principal, model: str
    ) -> tuple[str, GuardPolicy] | None:
        key = principal.key
        key_policy = key.metadata.get("guard_policy") if key is not None else None
        for name in (
            template_policy,
            key_policy if isinstance(key_policy, str) else None,
            self.config.models.get(model),
            self.config.default_policy,
        ):
            if name is None:
                continue
            policy = self.config.policies.get(name)
            if policy is None:
                raise ChatgateError(
                    f"The guard policy `{name}` is not configured.", code="guard_policy_missing"
                )
            return name, policy
        return None

    @staticmethod
    def moderation_texts(request: ModerationRequest) -> list[str]:
        """The texts a ``/v1/moderations`` request asks about (refusing what it cannot judge)."""
        items = [request.input] if isinstance(request.input, str) else request.input
        texts = [item if isinstance(item, str) else getattr(item, "text", "") for item in items]
        if any(getattr(item, "type", None) == "image_url" for item in items):
            raise InvalidRequestError(
                "Image inputs are not supported by this moderation model.",
                param="input",
                code="unsupported_input",
            )
        if sum(len(t) for t in texts) > MAX_MODERATION_CHARACTERS:
            raise InvalidRequestError(
                f"`input` is too long (at most {MAX_MODERATION_CHARACTERS} characters).",
                param="input",
            )
        return texts

    async def moderation(self, texts: list[str]) -> ModerationResponse:
        """OpenAI's ``/v1/moderations`` response for ``texts``."""
        names = MODERATION_CATEGORIES
        verdicts = await self.moderator.moderate(texts)
        return {
            "id": f"modr-{secrets.token_hex(12)}",
            "model": self.moderator.model,
            "results": [
                {
                    "flagged": v.flagged,
                    "categories": {n: v.categories.get(n, False) for n in names},
                    "category_scores": {n: v.category_scores.get(n, 0.0) for n in names},
                    "category_applied_input_types": {n: ["text"] for n in names},
                }
                for v in verdicts
            ],
        }

    def pii_detector(self, policy_name: str) -> PiiDetector:
        return self._pii[policy_name]

    async def close(self) -> None:
        await self.moderator.close()
