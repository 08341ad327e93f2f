"""``chatgate batch``: submit a JSONL file as a batch to a running gateway and follow it
(``--wait`` shows a progress bar), check its status, download its results, cancel it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import click
import orjson

__all__ = ["batch"]

T = TypeVar("T")
_TERMINAL = ("completed", "failed", "expired", "cancelled")


class _Api:
    def __init__(self, base_url: str, api_key: str | None):
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def call(
        self, session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
    ) -> Any:
        async with session.request(
            method, f"{self._base}{path}", headers=self._headers, **kwargs
        ) as response:
            body = await response.read()
            if response.status >= 400:
                try:
                    message = orjson.loads(body)["error"]["message"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    message = body[:300].decode(errors="replace")
                raise click.ClickException(f"{response.status}: {message}")
            content_type = response.headers.get("content-type", "")
            return orjson.loads(body) if content_type.startswith("application/json") else body


def _run(
    ctx: click.Context, work: Callable[[_Api, aiohttp.ClientSession], Coroutine[Any, Any, T]]
) -> T:
    api = _Api(ctx.obj["base_url"], os.environ.get(ctx.obj["api_key_env"]))

    async def go() -> T:
        async with aiohttp.ClientSession() as session:
            return await work(api, session)

    try:
        return asyncio.run(go())
    except aiohttp.ClientError as exc:
        raise click.ClickException(f"cannot reach the gateway: {exc}") from None


def _summary(batch: dict[str, Any]) -> str:
    counts = batch.get("request_counts") or {}
    return (
        f"{batch['id']}  {batch['status']}  {counts.get('completed', 0)} completed, "
        f"{counts.get('failed', 0)} failed of {counts.get('total', 0)}"
    )


@click.group()
@click.option("--base-url", default="http://127.0.0.1:8080/v1", show_default=True)
@click.option(
    "--api-key-env",
    default="CHATGATE_API_KEY",
    show_default=True,
    help="Environment variable with the key to call the gateway with.",
)
@click.pass_context
def batch(ctx: click.Context, base_url: str, api_key_env: str) -> None:
    """Batches on a running gateway (OpenAI's Batch API)."""
    ctx.obj = {"base_url": base_url, "api_key_env": api_key_env}


async def _follow(api: _Api, session: aiohttp.ClientSession, batch_id: str) -> dict[str, Any]:
    shown = 0
    with click.progressbar(length=1, label=batch_id, file=sys.stderr) as bar:
        while True:
            current: dict[str, Any] = await api.call(session, "GET", f"/batches/{batch_id}")
            counts = current.get("request_counts") or {}
            total = counts.get("total") or 1
            done = counts.get("completed", 0) + counts.get("failed", 0)
            bar.length = total
            bar.update(done - shown)
            shown = done
            if current["status"] in _TERMINAL:
                return current
            await asyncio.sleep(0.5)


@batch.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--endpoint",
    default="/v1/chat/completions",
    show_default=True,
    type=click.Choice(["/v1/chat/completions", "/v1/moderations"]),
)
@click.option("--metadata", multiple=True, help="key=value (repeatable).")
@click.option("--wait", is_flag=True, help="Follow the batch to its end with a progress bar.")
@click.pass_context
def submit(
    ctx: click.Context, file: Path, endpoint: str, metadata: tuple[str, ...], wait: bool
) -> None:
    """Upload FILE (JSONL of requests) and create a batch from it; prints the batch id."""
    pairs = dict(item.split("=", 1) for item in metadata if "=" in item)
    content = file.read_bytes()

    async def work(api: _Api, session: aiohttp.ClientSession) -> dict[str, Any]:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", content, filename=file.name)
        uploaded = await api.call(session, "POST", "/files", data=form)
        body = {"input_file_id": uploaded["id"], "endpoint": endpoint, "completion_window": "24h"}
        if pairs:
            body["metadata"] = pairs
        created: dict[str, Any] = await api.call(session, "POST", "/batches", json=body)
        click.echo(created["id"])
        return await _follow(api, session, created["id"]) if wait else created

    result = _run(ctx, work)
    if wait:
        click.echo(_summary(result), err=True)
        if result["status"] != "completed":
            raise click.ClickException(f"the batch ended {result['status']}")


@batch.command()
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="The whole batch object.")
@click.pass_context
def status(ctx: click.Context, batch_id: str, as_json: bool) -> None:
    """Where BATCH_ID stands."""

    async def work(api: _Api, session: aiohttp.ClientSession) -> dict[str, Any]:
        found: dict[str, Any] = await api.call(session, "GET", f"/batches/{batch_id}")
        return found

    found = _run(ctx, work)
    click.echo(
        orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() if as_json else _summary(found)
    )


@batch.command()
@click.argument("batch_id")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the results (default: BATCH_ID.jsonl).",
)
@click.option("--errors", is_flag=True, help="The error file instead of the output file.")
@click.pass_context
def download(ctx: click.Context, batch_id: str, output: Path | None, errors: bool) -> None:
    """Write BATCH_ID's results (or its errors) to a JSONL file: its output file once it has
    finished, the lines answered so far while it runs."""

    async def work(api: _Api, session: aiohttp.ClientSession) -> bytes:
        found = await api.call(session, "GET", f"/batches/{batch_id}")
        file_id = found.get("error_file_id" if errors else "output_file_id")
        if file_id:
            content: bytes = await api.call(session, "GET", f"/files/{file_id}/content")
            return content
        if found["status"] in _TERMINAL:
            kind = "error" if errors else "output"
            raise click.ClickException(f"{batch_id} has no {kind} file: it {found['status']}")
        kind = "errors" if errors else "output"
        partial: bytes = await api.call(
            session, "GET", f"/batches/{batch_id}/results", params={"kind": kind}
        )
        return partial

    content = _run(ctx, work)
    target = output or Path(f"{batch_id}{'.errors' if errors else ''}.jsonl")
    target.write_bytes(content)
    lines = content.count(b"\n")
    click.echo(f"{target}: {lines} lines", err=True)


@batch.command()
@click.argument("batch_id")
@click.pass_context
def cancel(ctx: click.Context, batch_id: str) -> None:
    """Cancel BATCH_ID (lines already answered are kept)."""

    async def work(api: _Api, session: aiohttp.ClientSession) -> dict[str, Any]:
        found: dict[str, Any] = await api.call(session, "POST", f"/batches/{batch_id}/cancel")
        return found

    click.echo(_summary(_run(ctx, work)))
