"""The request pipeline and the model registry it routes through."""

from chatgate.gateway.auth import Authenticator, Principal
from chatgate.gateway.context import ChatContext, Next, Outcome, Stage
from chatgate.gateway.pipeline import Pipeline
from chatgate.gateway.registry import Deployment, ModelRegistry
from chatgate.gateway.stages import DeadlineStage
from chatgate.gateway.streams import ChunkStream

__all__ = [
    "Authenticator",
    "ChatContext",
    "ChunkStream",
    "DeadlineStage",
    "Deployment",
    "ModelRegistry",
    "Next",
    "Outcome",
    "Pipeline",
    "Principal",
    "Stage",
]
