"""Typed API errors, and the table that sorts the cloud's error codes into them.

The poller needs to know only two things about a failure: may it be retried, and what to tell
the operator. The codes come from Alibaba's gateway tables and alikafka's own (see
reference/alikafka-api.md section 5); anything unknown is a non-retryable request error, because
retrying a request the server rejected for a reason we do not understand only burns quota.
"""

from __future__ import annotations

import re

_SAFE_CODE = re.compile(r"[^A-Za-z0-9._-]")


class ApiError(Exception):
    """A failed API call. ``code`` is what ``api_requests_total{code}`` counts."""

    kind = "error"
    retryable = False

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        request_id: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        self.http_status = http_status
        self.retry_after = retry_after
        super().__init__(f"{code}: {message}" if message else code)


class AuthError(ApiError):
    """The request's identity was refused: keys, signature, token or clock."""

    kind = "auth"


class ForbiddenError(ApiError):
    """The identity is valid but lacks permission (RAM policy)."""

    kind = "forbidden"


class ThrottledError(ApiError):
    """The account's rate limit was hit; retried after the server's retry-after."""

    kind = "throttled"
    retryable = True


class NotFoundError(ApiError):
    """The instance or consumer group does not exist (or is not usable) in that region."""

    kind = "not_found"


class ServerError(ApiError):
    """The service failed (5xx or an internal error code); retried."""

    kind = "server"
    retryable = True


class TransportError(ApiError):
    """No answer: timeout, refused or reset connection; retried."""

    kind = "transport"
    retryable = True


class MalformedResponseError(ApiError):
    """An answer that cannot be understood: not JSON, or not the documented shape."""

    kind = "malformed"


class RequestError(ApiError):
    """Any other rejection of the request (bad parameter, unknown action...)."""

    kind = "request"


_THROTTLE_CODES = {"Throttling", "Rejected.Throttling", "ONS_SYSTEM_FLOW_CONTROL", "ServiceUnavailable.Throttling"}
_SERVER_CODES = {"InternalError", "ServiceUnavailable", "ONS_SYSTEM_ERROR", "AgentBusinessError", "AgentError",
                 "UnknownError", "ServiceTimeout"}
_AUTH_PREFIXES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "IncompleteSignature", "InvalidSecurityToken",
                  "InvalidTimeStamp", "SignatureNonceUsed", "AUTH_SIGNATURE_CHECK_ERROR", "MissingSecurityToken",
                  "InvalidAccessKeySecret")
_FORBIDDEN_PREFIXES = ("Forbidden", "NoPermission", "AUTH_", "NotAuthorized", "InvalidAuthorization")
_NOT_FOUND_CODES = {"BIZ_SUBSCRIPTION_NOT_FOUND", "BIZ_TOPIC_NOT_FOUND", "BIZ_INSTANCE_STATUS_ERROR",
                    "BIZ_CONSUMER_NOT_EXIST", "BIZ_INSTANCE_NOT_FOUND"}


# Refusals of a request signed too far from the server's time (alikafka's gateway and its siblings).
CLOCK_SKEW_CODES = ("InvalidTimeStamp.Expired", "IllegalTimestamp", "RequestTimeTooSkewed")


def clock_skew_message(offset: float | None) -> str:
    """What to say when the server refused our timestamp; ``offset`` is local minus server, seconds."""
    if offset is None:
        return "clock skew: the local clock is more than 15 minutes off the API server's (no Date header to measure)"
    way = "ahead of" if offset >= 0 else "behind"
    return f"clock skew: local clock is {abs(offset):.0f} s {way} the API server"


def sanitise_code(code: str) -> str:
    """Make a server-supplied code safe and bounded as a label value."""
    cleaned = _SAFE_CODE.sub("_", code.strip())[:64]
    return cleaned or "unknown"


def error_class(code: str, http_status: int | None) -> type[ApiError]:
    """Sort an error code (and the HTTP status it came with) into its error type."""
    if code in _THROTTLE_CODES or code.startswith("Throttling"):
        return ThrottledError
    if code.startswith(_AUTH_PREFIXES):
        return AuthError
    if code.startswith(_FORBIDDEN_PREFIXES):
        return ForbiddenError
    if code in _NOT_FOUND_CODES or (code.endswith(".NotFound") and not code.startswith("InvalidAction")
                                     and not code.startswith("InvalidApi")):
        return NotFoundError
    if code in _SERVER_CODES or (http_status is not None and http_status >= 500):
        return ServerError
    return RequestError
