"""HTTP only: parse, validate into wire types, call the pipeline, serialise JSON or SSE."""

from chatgate.api.app import app_from_environment, create_app

__all__ = ["app_from_environment", "create_app"]
