"""Chat Completions wire types: the request (validated) and the response, chunk and usage shapes.

Request types are pydantic models ordered as in OpenAI's API reference
(https://platform.openai.com/docs/api-reference/chat/create). They accept unknown fields
(``extra="allow"``): chatgate forwards them to upstreams that may understand them, and the API
layer logs their names. Response shapes are ``TypedDict``s: they are built on the hot path and
serialised with orjson, so they carry no validation cost.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import TypedDict

from chatgate.protocol.prompts import PromptReference

__all__ = [
    "AssistantMessage",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "Choice",
    "ChunkChoice",
    "ChunkDelta",
    "CompletionUsage",
    "ContentPart",
    "ContextOptions",
    "DeveloperMessage",
    "FunctionDefinition",
    "JsonSchemaFormat",
    "Logprobs",
    "Message",
    "NamedToolChoice",
    "ResponseFormat",
    "ResponseMessage",
    "StreamOptions",
    "SystemMessage",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolMessage",
    "TopLogprob",
    "UserMessage",
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


# --- content parts -------------------------------------------------------------------------


class TextPart(_Wire):
    type: Literal["text"]
    text: str


class ImageUrlPart(_Wire):
    type: Literal["image_url"]
    image_url: dict[str, Any]


class InputAudioPart(_Wire):
    type: Literal["input_audio"]
    input_audio: dict[str, Any]


class FilePart(_Wire):
    type: Literal["file"]
    file: dict[str, Any]


class RefusalPart(_Wire):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[
    TextPart | ImageUrlPart | InputAudioPart | FilePart | RefusalPart,
    Field(discriminator="type"),
]


# --- messages ------------------------------------------------------------------------------


class FunctionCall(_Wire):
    name: str
    arguments: str


class ToolCall(_Wire):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class _ContentMessage(_Wire):
    content: str | list[ContentPart]
    name: str | None = None


class SystemMessage(_ContentMessage):
    role: Literal["system"]


class DeveloperMessage(_ContentMessage):
    role: Literal["developer"]


class UserMessage(_ContentMessage):
    role: Literal["user"]


class AssistantMessage(_Wire):
    role: Literal["assistant"]
    content: str | list[ContentPart] | None = None
    refusal: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None

    @model_validator(mode="after")
    def _content_or_calls(self) -> AssistantMessage:
        if self.content is None and not self.tool_calls and self.function_call is None:
            raise ValueError("an assistant message needs `content` or `tool_calls`")
        return self


class ToolMessage(_Wire):
    role: Literal["tool"]
    content: str | list[ContentPart]
    tool_call_id: str


class FunctionMessage(_Wire):
    role: Literal["function"]
    content: str | None
    name: str


Message = Annotated[
    SystemMessage
    | DeveloperMessage
    | UserMessage
    | AssistantMessage
    | ToolMessage
    | FunctionMessage,
    Field(discriminator="role"),
]


# --- tools and formats ---------------------------------------------------------------------


class FunctionDefinition(_Wire):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Wire):
    type: Literal["function"]
    function: FunctionDefinition


class _NamedFunction(_Wire):
    name: str


class NamedToolChoice(_Wire):
    type: Literal["function"]
    function: _NamedFunction


class JsonSchemaFormat(_Wire):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class _TextFormat(_Wire):
    type: Literal["text"]


class _JsonObjectFormat(_Wire):
    type: Literal["json_object"]


class _JsonSchemaResponseFormat(_Wire):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[
    _TextFormat | _JsonObjectFormat | _JsonSchemaResponseFormat, Field(discriminator="type")
]


class ContextOptions(_Wire):
    """chatgate extension ``context``: what to do when the prompt does not fit the model."""

    overflow: Literal["error", "truncate_oldest", "middle_out"] | None = None
    """``error`` (OpenAI's 400), drop whole oldest turns, or drop turns from the middle."""
    clamp_max_tokens: bool | None = None
    """Lower ``max_tokens`` to what fits instead of failing."""


class StreamOptions(_Wire):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


# --- the request ---------------------------------------------------------------------------

_Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]


class ChatCompletionRequest(_Wire):
    """``POST /v1/chat/completions``, fields in the order of OpenAI's reference."""

    messages: list[Message] = []
    """Required, and not empty, unless ``prompt`` renders the conversation's start."""
    model: Annotated[str, Field(min_length=1)]
    store: bool | None = None
    reasoning_effort: str | None = None
    metadata: dict[str, str] | None = None
    frequency_penalty: _Penalty | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    modalities: list[str] | None = None
    prediction: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    presence_penalty: _Penalty | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = None
    service_tier: str | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    # --- chatgate extensions (removed before a request goes upstream) ---
    context: ContextOptions | None = None
    prompt: PromptReference | None = None
    """A stored prompt template to render into the first messages (Responses-style)."""

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ChatCompletionRequest:
        if not self.messages and self.prompt is None:
            if "messages" not in self.model_fields_set:
                raise _FieldError("messages", "Missing required parameter: 'messages'.")
            raise _FieldError(
                "messages",
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
            )
        if self.top_logprobs is not None and not self.logprobs:
            raise _FieldError("top_logprobs", "`top_logprobs` requires `logprobs` to be true.")
        if self.stream_options is not None and not self.stream:
            raise _FieldError(
                "stream_options",
                "The `stream_options` parameter is only allowed when `stream` is true.",
            )
        if self.logit_bias:
            for key in self.logit_bias:
                if not key.lstrip("-").isdigit():
                    raise _FieldError(
                        "logit_bias", f"`logit_bias` keys must be token ids, got {key!r}."
                    )
        if isinstance(self.tool_choice, NamedToolChoice):
            names = {t.function.name for t in self.tools or ()}
            if self.tool_choice.function.name not in names:
                raise _FieldError(
                    "tool_choice",
                    f"`tool_choice` names `{self.tool_choice.function.name}`, "
                    "which is not in `tools`.",
                )
        elif self.tool_choice == "required" and not self.tools:
            raise _FieldError("tool_choice", "`tool_choice: required` needs `tools`.")
        return self

    @property
    def completion_limit(self) -> int | None:
        """The completion token cap: ``max_completion_tokens`` wins over ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def choice_count(self) -> int:
        return self.n or 1

    @property
    def stop_sequences(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]

    def rough_prompt_tokens(self) -> int:
        """A quick prompt-size estimate (about 4 characters a token) when no tokenizer is known."""
        size = 0
        for message in self.messages:
            content = getattr(message, "content", None)
            if isinstance(content, str):
                size += len(content)
            elif isinstance(content, list):
                size += sum(len(getattr(part, "text", "")) for part in content)
            size += len(str(getattr(message, "tool_calls", None) or ""))
        return size // 4 + 4 * len(self.messages) + 3

    @property
    def include_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class _FieldError(ValueError):
    """A cross-field rule broken; carries the parameter OpenAI would name."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param
        self.message = message


# --- responses -----------------------------------------------------------------------------


class TopLogprob(TypedDict):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TypedDict):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class Logprobs(TypedDict):
    content: list[TokenLogprob] | None
    refusal: list[TokenLogprob] | None


class ResponseMessage(TypedDict):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    annotations: NotRequired[list[Any]]
    tool_calls: NotRequired[list[dict[str, Any]]]


class Choice(TypedDict):
    index: int
    message: ResponseMessage
    logprobs: Logprobs | None
    finish_reason: str


class CompletionUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: NotRequired[dict[str, int]]
    completion_tokens_details: NotRequired[dict[str, int]]


class ChatCompletion(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: NotRequired[CompletionUsage]
    system_fingerprint: NotRequired[str | None]
    service_tier: NotRequired[str | None]


class ChunkDelta(TypedDict, total=False):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    tool_calls: list[dict[str, Any]]


class ChunkChoice(TypedDict):
    index: int
    delta: ChunkDelta
    logprobs: Logprobs | None
    finish_reason: str | None


class ChatCompletionChunk(TypedDict):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: NotRequired[CompletionUsage | None]
    system_fingerprint: NotRequired[str | None]
    service_tier: NotRequired[str | None]
