"""Render OpenAI chat messages into a prompt with the model's own chat template (GGUF metadata)."""

from __future__ import annotations

from typing import Any, cast

import orjson
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from chatgate.protocol import ChatCompletionRequest, UnsupportedParameterError
from chatgate.protocol.chat import (
    AssistantMessage,
    ContentPart,
    DeveloperMessage,
    FunctionMessage,
    Message,
    TextPart,
    Tool,
    ToolMessage,
)

__all__ = ["ChatTemplate", "tool_instructions"]


class ChatTemplate:
    """A model's chat template; knows whether it understands tools natively."""

    def __init__(self, template: str, *, bos_token: str, eos_token: str):
        self._formatter = Jinja2ChatFormatter(
            template=template, bos_token=bos_token, eos_token=eos_token
        )
        self.native_tools = "tool_calls" in template or "tools" in template
        self.bos_token = bos_token

    def render(self, request: ChatCompletionRequest) -> str:
        messages = [self._message(m) for m in request.messages]
        tools = [t.model_dump(exclude_none=True) for t in request.tools or ()]
        use_tools = bool(tools) and request.tool_choice != "none"
        if use_tools and not self.native_tools:
            messages.insert(0, {"role": "system", "content": tool_instructions(request)})
            if len(messages) > 1 and messages[1]["role"] == "system":
                first = messages.pop(0)
                messages[0] = {
                    "role": "system",
                    "content": f"{messages[0]['content']}\n\n{first['content']}",
                }
        result = self._formatter(
            messages=cast(Any, messages), tools=cast(Any, tools) if use_tools else None
        )
        return str(result.prompt)

    def _message(self, message: Message) -> dict[str, Any]:
        role = "system" if isinstance(message, DeveloperMessage) else message.role
        if isinstance(message, AssistantMessage):
            text = _text(message.content) if message.content is not None else ""
            if message.tool_calls and not self.native_tools:
                calls = [
                    {"name": c.function.name, "arguments": _arguments(c.function.arguments)}
                    for c in message.tool_calls
                ]
                rendered = "\n".join(orjson.dumps(c).decode() for c in calls)
                text = f"{text}\n{rendered}" if text else rendered
            out: dict[str, Any] = {"role": "assistant", "content": text}
            if message.tool_calls and self.native_tools:
                out["tool_calls"] = [c.model_dump() for c in message.tool_calls]
            return out
        if isinstance(message, ToolMessage):
            return {
                "role": "tool",
                "content": _text(message.content),
                "tool_call_id": message.tool_call_id,
            }
        if isinstance(message, FunctionMessage):
            return {"role": "tool", "content": message.content or "", "name": message.name}
        return {"role": role, "content": _text(message.content)}


def _text(content: str | list[ContentPart]) -> str:
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif part.type == "refusal":
            texts.append(getattr(part, "refusal", ""))
        else:
            raise UnsupportedParameterError(
                f"Content parts of type `{part.type}` are not supported by this model; "
                "send text parts only.",
                param="messages",
            )
    return "".join(texts)


def _arguments(arguments: str) -> Any:
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments


def _tool_line(tool: Tool) -> str:
    spec: dict[str, Any] = {
        "name": tool.function.name,
        "description": tool.function.description or "",
    }
    spec["parameters"] = tool.function.parameters or {"type": "object", "properties": {}}
    return orjson.dumps(spec).decode()


def tool_instructions(request: ChatCompletionRequest) -> str:
    """A system note that describes the tools to a model whose template has no tool support."""
    tools = "\n".join(_tool_line(t) for t in request.tools or ())
    how = (
        'To call a tool, answer with only a JSON object {"name": <tool name>, '
        '"arguments": <arguments object>}.'
    )
    if request.tool_choice == "auto" or request.tool_choice is None:
        how += " If no tool is needed, answer normally in plain text."
    return f"You can call these tools:\n{tools}\n{how}"
