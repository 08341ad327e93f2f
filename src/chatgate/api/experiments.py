"""``POST /v1/feedback`` (any key, about its own answers) and the experiments' admin views:
``GET /admin/experiments`` and ``GET /admin/experiments/{name}/report``."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from chatgate.api.auth import authenticate, require_admin
from chatgate.api.render import json_response
from chatgate.config import ExperimentConfig
from chatgate.gateway import Authenticator
from chatgate.gateway.experiment_report import experiment_report
from chatgate.gateway.observe import Observer
from chatgate.protocol import NotFoundError, parse_json_object, validate
from chatgate.protocol.feedback import FeedbackRequest
from chatgate.state.feedback import FeedbackStore
from chatgate.state.request_log import RequestLogStore

__all__ = ["ExperimentEndpoints"]


class ExperimentEndpoints:
    def __init__(
        self,
        experiments: list[ExperimentConfig],
        feedback: FeedbackStore,
        authenticator: Authenticator,
        observer: Observer,
        requests: RequestLogStore,
    ):
        self._experiments = {e.name: e for e in experiments}
        self._feedback = feedback
        self._auth = authenticator
        self._observer = observer
        self._requests = requests

    async def _caller_of(self, request_id: str) -> tuple[bool, str | None]:
        """Who made ``request_id``: this replica's unwritten records first, then the log — and
        once more after a flush interval or two, for a request another replica answered and
        has not written yet."""
        await self._observer.flush()
        found = await self._requests.caller_of(request_id)
        if not found[0]:
            await asyncio.sleep(2 * self._observer.flush_interval)
            found = await self._requests.caller_of(request_id)
        return found

    async def feedback(self, request: Request) -> Response:
        principal = await authenticate(request, self._auth, "feedback")
        body = validate(FeedbackRequest, parse_json_object(await request.body()))
        key_id = principal.key.id if principal.key is not None else None
        found, owner = await self._caller_of(body.request_id)
        if not found or owner != key_id:  # another caller's answer is as good as none
            raise NotFoundError(
                f"No request of yours has the id '{body.request_id}' (use the `x-request-id` "
                "of its response).",
                param="request_id",
            )
        feedback_id = await self._feedback.add(
            body.request_id,
            key_id=key_id,
            score=body.score,
            label=body.label,
            comment=body.comment,
        )
        return json_response(
            {"object": "feedback", "id": f"fb_{feedback_id}", "request_id": body.request_id}, 201
        )

    async def list_experiments(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        data = [
            {"object": "experiment", **e.model_dump(mode="json")}
            for e in self._experiments.values()
        ]
        return json_response({"object": "list", "data": data})

    async def report(self, request: Request) -> Response:
        await require_admin(request, self._auth)
        name = request.path_params["name"]
        experiment = self._experiments.get(name)
        if experiment is None:
            raise NotFoundError(
                f"No experiment `{name}`.", param="name", code="experiment_not_found"
            )
        return json_response(experiment_report(experiment, await self._feedback.experiment(name)))
