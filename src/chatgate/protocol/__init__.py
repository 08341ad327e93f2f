"""OpenAI wire types, the error family, and request parsing: the language every module speaks."""

from chatgate.protocol.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    ChunkDelta,
    CompletionUsage,
    Logprobs,
    ResponseMessage,
    TokenLogprob,
    TopLogprob,
)
from chatgate.protocol.errors import (
    ChatgateError,
    ContextLengthExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
    OverloadedError,
    ServiceUnavailableError,
    UnsupportedParameterError,
    UpstreamError,
    UpstreamTimeoutError,
    error_body,
)
from chatgate.protocol.models import ModelList, ModelObject
from chatgate.protocol.parse import parse_json_object, validate

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatgateError",
    "Choice",
    "ChunkChoice",
    "ChunkDelta",
    "CompletionUsage",
    "ContextLengthExceededError",
    "InvalidRequestError",
    "Logprobs",
    "ModelList",
    "ModelNotFoundError",
    "ModelObject",
    "NotFoundError",
    "OverloadedError",
    "ResponseMessage",
    "ServiceUnavailableError",
    "TokenLogprob",
    "TopLogprob",
    "UnsupportedParameterError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "error_body",
    "parse_json_object",
    "validate",
]
