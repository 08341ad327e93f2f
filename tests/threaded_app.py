"""An aiohttp app served on a free local port from a thread of its own (fake servers at the
edge of the tests: engines, an OTLP receiver)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from aiohttp import web

__all__ = ["ThreadedApp", "serve_in_thread"]


@dataclass
class ThreadedApp:
    port: int
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def serve_in_thread(app: web.Application) -> ThreadedApp:
    started = threading.Event()
    ready: dict[str, object] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app, handle_signals=False)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        ready["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready["loop"] = loop
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the app did not start")
    return ThreadedApp(ready["port"], ready["loop"], thread)  # type: ignore[arg-type]
