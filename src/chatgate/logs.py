"""Logging that never blocks a request: records go through a queue to a writer thread.
Structured events (one per request) are rendered as JSON by structlog on top of it."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue

import orjson
import structlog

__all__ = ["configure_logging"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Send every record through a bounded queue to a background thread that writes stderr."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "chatgate_pid", None) == os.getpid():
            return  # already set up in this process (a forked worker needs its own writer)
    records: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=100_000)
    writer = logging.StreamHandler()
    writer.setFormatter(logging.Formatter(_FORMAT))
    listener = logging.handlers.QueueListener(records, writer, respect_handler_level=False)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = _DeferredQueueHandler(records)
    handler.chatgate_pid = os.getpid()  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    listener.start()
    atexit.register(listener.stop)
    structlog.configure(
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.add_log_level,
            structlog.processors.JSONRenderer(serializer=_json),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


class _DeferredQueueHandler(logging.handlers.QueueHandler):
    """Hands records over as they are; the writer thread formats them. (The stock handler
    formats on the caller's thread so records can be pickled; an in-process queue needs no
    pickling, and formatting is the costly part of a log call.)"""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def _json(value: object, **_: object) -> str:
    return orjson.dumps(value, default=str).decode()
