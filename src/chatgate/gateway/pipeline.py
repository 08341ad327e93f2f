"""The pipeline every operation passes: stages built once from config, ending in the
operation's own work (for chat: the router's provider calls).

Each stage declares the operations it applies to; for each operation the chain is built once at
start from just those stages, so a stage costs nothing for an operation it does not apply to.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from chatgate.gateway.auth import Principal
from chatgate.gateway.auto import AUTO_HEADER, TASK_HEADER, AutoModels
from chatgate.gateway.context import (
    AnyContext,
    ChatContext,
    Context,
    Next,
    Operation,
    Outcome,
    Served,
    Stage,
)
from chatgate.gateway.experiments import Experiments
from chatgate.gateway.operations import CHAT
from chatgate.gateway.prompts import PromptLibrary
from chatgate.gateway.registry import ModelRegistry
from chatgate.gateway.stages.ratelimit import PRIORITY_HEADER
from chatgate.gateway.telemetry import Telemetry
from chatgate.protocol import ChatCompletionRequest

__all__ = ["COST_HEADER", "Pipeline"]

R = TypeVar("R")
M = TypeVar("M", bound=Served)

COST_HEADER = "x-chatgate-cost"
"""The request's cost in USD (answers that are not streamed: a stream's cost is known only
after its headers left)."""


class Pipeline:
    """``stages[0]`` runs first and wraps all the others; each operation's own work (``work``)
    is innermost."""

    def __init__(
        self,
        registry: ModelRegistry,
        stages: Sequence[Stage],
        work: Mapping[Operation, Next],
        *,
        request_timeout: float,
        auto: AutoModels | None = None,
        telemetry: Telemetry | None = None,
        prompts: PromptLibrary | None = None,
        experiments: Experiments | None = None,
    ):
        self.registry = registry
        self.prompts = prompts
        self.experiments = experiments if experiments else None
        self.auto = auto
        self.telemetry = telemetry
        if telemetry is not None:
            stages = [telemetry.wrap(stage) for stage in stages]
        self.stages = tuple(stages)
        self.request_timeout = request_timeout
        self._chains: dict[str, Next] = {}
        for op, innermost in work.items():
            handler: Next = innermost
            for stage in reversed(self.stages):
                if stage.operations is None or op.name in stage.operations:
                    handler = functools.partial(stage, call_next=handler)
            self._chains[op.name] = handler

    def deadline(self) -> float:
        return time.monotonic() + self.request_timeout

    def context(
        self,
        op: Operation,
        request: R,
        model: M,
        principal: Principal,
        request_id: str,
        *,
        headers: Mapping[str, str] | None = None,
        input_tokens: int | None = None,
        priority: str | None = None,
    ) -> Context[R, M]:
        """A context for ``op`` (chat builds its own: :meth:`chat`)."""
        if priority is not None:
            headers = {**(headers or {}), PRIORITY_HEADER: priority}
        return Context(
            op=op,
            request=request,
            request_id=request_id,
            model=model,
            principal=principal,
            deadline=self.deadline(),
            headers=headers or {},
            input_tokens=input_tokens,
        )

    async def run(self, ctx: AnyContext) -> Any:
        """Run ``ctx``'s operation through its stages; its result (the API layer renders it)."""
        chain = self._chains[ctx.op.name]
        if self.telemetry is None:
            outcome = await chain(ctx)
        else:
            outcome = await self.telemetry.run(ctx, chain)
        ctx.response_headers["server-timing"] = ctx.server_timing()
        cost = ctx.cost()
        if cost is not None and not ctx.stream:
            ctx.response_headers[COST_HEADER] = f"{cost:.8f}"
        return outcome

    async def chat(
        self,
        request: ChatCompletionRequest,
        body: dict[str, Any],
        request_id: str,
        principal: Principal,
        headers: Mapping[str, str] | None = None,
        *,
        client_request_id: str | None = None,
    ) -> tuple[Outcome, ChatContext]:
        assignment = None
        if self.experiments is not None:
            request, assignment = self.experiments.apply(request, body, principal, request_id)
        prompt = None
        if self.prompts is not None:
            request, prompt = await self.prompts.apply(request, body)
        chosen = None
        if self.auto is not None and request.model in self.auto:
            task = (headers or {}).get(TASK_HEADER)
            chosen = await self.auto.choose(request.model, request, task, principal)
            request.model = chosen
            body["model"] = chosen
        ctx: ChatContext = Context(
            op=CHAT,
            request=request,
            body=body,
            request_id=request_id,
            model=self.registry.resolve(request.model),
            principal=principal,
            headers=headers or {},
            deadline=self.deadline(),
            prompt=prompt,
            assignment=assignment,
            client_request_id=client_request_id,
        )
        if chosen is not None:
            ctx.response_headers[AUTO_HEADER] = chosen
        outcome: Outcome = await self.run(ctx)
        return outcome, ctx
