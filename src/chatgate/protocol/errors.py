"""The one exception family of chatgate, and OpenAI's error body.

Hierarchy::

    ChatgateError                      (500 api_error)
    +-- InvalidRequestError            (400 invalid_request_error)
    |   +-- ContextLengthExceededError (400 invalid_request_error, code context_length_exceeded)
    |   +-- UnsupportedParameterError  (400 invalid_request_error, code unsupported_parameter)
    |   +-- ContentPolicyError         (400 invalid_request_error, code content_policy_violation)
    +-- AuthenticationError            (401 authentication_error, code invalid_api_key)
    +-- PermissionDeniedError          (403 permission_error, code permission_denied)
    +-- PayloadTooLargeError           (413 invalid_request_error, code request_too_large)
    +-- TooManyRequestsError           (429 rate_limit_error)
    |   +-- RequestTooLargeError       (429: more tokens than a tokens-per-minute limit)
    +-- ConflictError                  (409 invalid_request_error)
    +-- NotFoundError                  (404 invalid_request_error)
    |   +-- ModelNotFoundError         (404 invalid_request_error, code model_not_found)
    +-- OverloadedError                (503 server_error, code server_overloaded)
    +-- ServiceUnavailableError        (503 server_error)
    +-- UpstreamError                  (status of the upstream, its type and code)
    +-- UpstreamTimeoutError           (504 timeout)

Every error renders as ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "ChatgateError",
    "ConflictError",
    "ContentPolicyError",
    "ContextLengthExceededError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "TooManyRequestsError",
    "UnsupportedParameterError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "error_body",
]


class ChatgateError(Exception):
    """Base of every error chatgate reports to a client."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = headers or {}
        """Response headers that belong with the error (e.g. ``retry-after``)."""

    @property
    def status_code(self) -> int:
        return self.status

    @property
    def error_type(self) -> str:
        return self.type

    def to_body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, self.param, self.code)


class InvalidRequestError(ChatgateError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceededError(InvalidRequestError):
    default_code = "context_length_exceeded"


class UnsupportedParameterError(InvalidRequestError):
    default_code = "unsupported_parameter"


class ContentPolicyError(InvalidRequestError):
    """A guard refused the request (moderation, personal data, prompt injection)."""

    default_code = "content_policy_violation"


class AuthenticationError(ChatgateError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(ChatgateError):
    status = 403
    type = "permission_error"
    default_code = "permission_denied"


class TooManyRequestsError(ChatgateError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class PayloadTooLargeError(ChatgateError):
    """A request body (or an uploaded file) larger than its limit: refused before it is read."""

    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RequestTooLargeError(TooManyRequestsError):
    """A request larger than a tokens-per-minute limit: it can never be admitted (the wire shape
    is the 429 of any rate limit, as OpenAI's; callers that would retry can tell it apart)."""


class ConflictError(ChatgateError):
    """The change lost a race (a compare-and-swap found another value)."""

    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class NotFoundError(ChatgateError):
    status = 404
    type = "invalid_request_error"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"

    def __init__(self, model: str):
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
        )


class OverloadedError(ChatgateError):
    status = 503
    type = "server_error"
    default_code = "server_overloaded"


class ServiceUnavailableError(ChatgateError):
    status = 503
    type = "server_error"
    default_code = "service_unavailable"


class UpstreamTimeoutError(ChatgateError):
    status = 504
    type = "timeout"
    default_code = "upstream_timeout"


class UpstreamError(ChatgateError):
    """An error reported by an upstream provider, kept in its own status and shape."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        deterministic: bool = False,
    ):
        super().__init__(message, param=param, code=code)
        self.retry_after = retry_after
        """Seconds the upstream asked us to wait (its ``retry-after``), if it said."""
        self.deterministic = deterministic
        """The upstream refused this request as it is (a 4xx, or a 500 reporting a validation
        error): it would fail the same way again, and says nothing of the upstream's health."""
        self._status = status
        self._type = error_type or ("server_error" if status >= 500 else "invalid_request_error")

    @property
    def status_code(self) -> int:
        return self._status

    @property
    def error_type(self) -> str:
        return self._type


def error_body(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
