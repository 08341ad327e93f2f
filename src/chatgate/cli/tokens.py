"""``chatgate tokens``: count prompt tokens the way the gateway does, without a server."""

from __future__ import annotations

import time
from pathlib import Path

import click
import orjson
from pydantic import ValidationError

from chatgate.cli.common import config_option, load_or_exit, run
from chatgate.gateway.registry import ModelRegistry
from chatgate.protocol import ChatCompletionRequest, ChatgateError

__all__ = ["tokens"]


@click.group()
def tokens() -> None:
    """Token counts with each model's own tokenizer."""


@tokens.command()
@config_option
@click.option("--model", required=True, help="Model id (as clients send it).")
@click.option(
    "--messages",
    "messages_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="JSON file with a `messages` list (or a whole chat request).",
)
@click.argument("text", required=False)
def count(
    config_path: Path | None, model: str, messages_file: Path | None, text: str | None
) -> None:
    """Prompt tokens of TEXT (as one user message) or of --messages."""
    if (text is None) == (messages_file is None):
        raise click.UsageError("give TEXT or --messages, not both")
    if messages_file is not None:
        loaded = orjson.loads(messages_file.read_bytes())
        body = loaded if isinstance(loaded, dict) else {"messages": loaded}
    else:
        body = {"messages": [{"role": "user", "content": text}]}
    try:
        request = ChatCompletionRequest.model_validate({**body, "model": model})
    except ValidationError as exc:
        raise click.BadParameter(str(exc.errors()[0]["msg"])) from None
    settings = load_or_exit(config_path)
    registry = ModelRegistry.from_settings(settings, created=int(time.time()))

    async def go() -> int | None:
        group = registry.resolve(model)
        await group.provider.start()
        try:
            return await group.provider.count_tokens(request)
        finally:
            await group.provider.close()

    try:
        counted = run(go())
    except ChatgateError as exc:
        raise click.ClickException(exc.message) from None
    if counted is None:
        raise click.ClickException(f"no tokenizer is known for {model}")
    click.echo(counted)
