"""Pipeline stages, one job each, in the order the pipeline runs them."""

from chatgate.gateway.stages.access import AccessStage
from chatgate.gateway.stages.budget import BudgetStage
from chatgate.gateway.stages.cache import CacheStage
from chatgate.gateway.stages.context import ContextStage
from chatgate.gateway.stages.deadline import DeadlineStage
from chatgate.gateway.stages.guard import GuardStage
from chatgate.gateway.stages.ratelimit import RateLimitStage

__all__ = [
    "AccessStage",
    "BudgetStage",
    "CacheStage",
    "ContextStage",
    "DeadlineStage",
    "GuardStage",
    "RateLimitStage",
]
