"""The request pipeline: stages built once from config, ending in the provider call."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

from chatgate.gateway.auth import Principal
from chatgate.gateway.auto import AUTO_HEADER, TASK_HEADER, AutoModels
from chatgate.gateway.context import ChatContext, Next, Outcome, Stage
from chatgate.gateway.experiments import Experiments
from chatgate.gateway.prompts import PromptLibrary
from chatgate.gateway.registry import ModelRegistry
from chatgate.gateway.tracing import Tracing
from chatgate.protocol import ChatCompletionRequest

__all__ = ["COST_HEADER", "Pipeline"]

COST_HEADER = "x-chatgate-cost"
"""The request's cost in USD (answers that are not streamed: a stream's cost is known only
after its headers left)."""


class Pipeline:
    """``stages[0]`` runs first and wraps all the others; the router (provider calls with
    retries and fallbacks) is innermost."""

    def __init__(
        self,
        registry: ModelRegistry,
        stages: Sequence[Stage],
        router: Next,
        *,
        request_timeout: float,
        auto: AutoModels | None = None,
        tracing: Tracing | None = None,
        prompts: PromptLibrary | None = None,
        experiments: Experiments | None = None,
    ):
        self.registry = registry
        self.prompts = prompts
        self.experiments = experiments if experiments else None
        self.auto = auto
        self.tracing = tracing
        if tracing is not None:
            stages = [tracing.wrap(stage) for stage in stages]
        self.stages = tuple(stages)
        self._timeout = request_timeout
        handler: Next = router
        for stage in reversed(self.stages):
            handler = functools.partial(stage, call_next=handler)
        self._handler = handler

    async def chat(
        self,
        request: ChatCompletionRequest,
        body: dict[str, Any],
        request_id: str,
        principal: Principal,
        headers: Mapping[str, str] | None = None,
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
        ctx = ChatContext(
            request=request,
            body=body,
            request_id=request_id,
            model=self.registry.resolve(request.model),
            principal=principal,
            headers=headers or {},
            deadline=time.monotonic() + self._timeout,
            prompt=prompt,
            assignment=assignment,
        )
        if chosen is not None:
            ctx.response_headers[AUTO_HEADER] = chosen
        if self.tracing is None:
            outcome = await self._handler(ctx)
        else:
            attributes = {"chatgate.request_id": request_id, "gen_ai.request.model": request.model}
            with self.tracing.span("chatgate.chat.completions", **attributes):
                outcome = await self._handler(ctx)
        ctx.response_headers["server-timing"] = ctx.server_timing()
        cost = ctx.cost()
        if cost is not None and not ctx.stream:
            ctx.response_headers[COST_HEADER] = f"{cost:.8f}"
        return outcome, ctx
