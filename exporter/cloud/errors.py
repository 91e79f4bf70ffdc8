"""Typed API errors, and the table that sorts the cloud's error codes into them.

The poller needs to know only two things about a failure: may it be retried, and what to tell
the operator. Only codes seen in a public source are named (the source beside each); an unknown code is
sorted by its family prefix and then by its HTTP status, and what is still unknown is a non-retryable
request error, because retrying a request the server rejected for a reason we do not understand only
burns quota.
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


# Every code named here was seen in a public source:
#   [G] the POP gateway's common error codes, https://help.aliyun.com/en/document_detail/434846.html and
#       https://help.aliyun.com/document_detail/48054.html;
#   [K] alikafka 2019-09-16 error codes, all HTTP 400, https://help.aliyun.com/document_detail/437697.html;
#   [T] aliyun/terraform-provider-alicloud alicloud/service_alicloud_alikafka.go (what it retries and what
#       it treats as "not found");
#   [M] the MQ (ONS) OpenAPI error table, https://www.alibabacloud.com/help/doc-detail/44425.htm.
# Codes are looked up exactly first, then by prefix, then by the HTTP status they came with.
_CODES: dict[str, type[ApiError]] = {
    "Rejected.Throttling": ThrottledError,  # [G]; Terraform's NeedRetry
    "ONS_SYSTEM_FLOW_CONTROL": ThrottledError,  # [T]: alikafka's own flow control, retried
    "InternalError": ServerError,  # [G], HTTP 500
    "ServiceUnavailable": ServerError,  # [G], HTTP 503
    "ONS_SYSTEM_ERROR": ServerError,  # [T] (retried) and [M] ("MQ backend exception")
    "AgentBusinessError": ServerError,  # [K]: "Internal error, please try again"
    "AgentError": ServerError,  # [K]: "A system exception occurred"
    "IncompleteSignature": AuthError,  # [G]
    "AUTH_SIGNATURE_CHECK_ERROR": AuthError,  # [K]: "check the AccessKeyId and AccessKeySecret"
    "AUTH_CAL_SIGNATURE_ERROR": AuthError,  # [K]: "failed to calculate the signature"
    "AUTH_LOGIN_CHECK_ERROR": AuthError,  # [K]: "failed to authenticate the logon"
    "IllegalTimestamp": AuthError,  # [G] (document 51132): a missing or unusable Timestamp
    # An STS key sent without its token: the gateway's "SecurityToken is mandatory for this action", as in
    # the public issue tengattack/certbot-dns-aliyun#22 (the Missing<Parameter> form of [G]).
    "MissingSecurityToken": AuthError,
    "RequestTimeTooSkewed": AuthError,  # OSS's error table: request time too far from the server's
    "NoPermission": ForbiddenError,  # [G]
    "BIZ_SUBSCRIPTION_NOT_FOUND": NotFoundError,  # [M] (group not found); [T] treats it as gone
    "BIZ_TOPIC_NOT_FOUND": NotFoundError,  # [M]; [T] treats it as gone
    "BIZ_INSTANCE_STATUS_ERROR": NotFoundError,  # [T]: an instance released or not usable
    "Forbidden.InstanceNotFound": NotFoundError,  # [G] (document 51132), HTTP 404, despite its prefix
    "INSTANCE_NOT_FOUND": NotFoundError,  # [M] (Chinese edition): "the specified instance is not found"
    "InvalidAction.NotFound": RequestError,  # [G], HTTP 404: the action, not a resource, is unknown
    "InvalidApi.NotFound": RequestError,  # [G], HTTP 404
}
# Families of codes by their first letters (each family seen in the sources above).
_PREFIXES: tuple[tuple[str, type[ApiError]], ...] = (
    ("Throttling", ThrottledError),  # Throttling.User, Throttling.Api ([G])
    ("InvalidAccessKeyId", AuthError),  # .NotFound (HTTP 404 in live answers), .Inactive ([G])
    ("Signature", AuthError),  # SignatureDoesNotMatch, SignatureNonceUsed ([G])
    ("InvalidTimeStamp", AuthError),  # .Expired (clock more than 15 min off), .Format ([G])
    ("InvalidSecurityToken", AuthError),  # .Expired, .Malformed: the STS token ([G] family)
    ("Forbidden", ForbiddenError),  # Forbidden.RAM, Forbidden.RiskControl ([G], HTTP 403)
    # alikafka's AUTH_ codes other than the three identity ones above are about what the caller may do:
    # AUTH_PERMISSION_CHECK_ERROR, AUTH_RESOURCE_OWNER_ERROR, AUTH_RESOURCE_EMPOWER_CHECK_ERROR,
    # AUTH_SERVICE_CHECK_ERROR (service not activated), AUTH_REQUEST_NOT_ALLOWED ("do not retry") ([K]).
    ("AUTH_", ForbiddenError),
)
# alikafka's business refusals (BIZ_*, [M]) name a missing resource with _NOT_FOUND
# (BIZ_TOPIC_NOT_FOUND, BIZ_SUBSCRIPTION_NOT_FOUND, BIZ_REGION_NOT_FOUND, BIZ_PUBLISH_INFO_NOT_FOUND) and
# otherwise refuse the request itself (BIZ_FIELD_CHECK_INVALID, BIZ_TOPIC_EXISTED, BIZ_CONSUMER_NOT_ONLINE).
# So an unknown BIZ_ code is not_found when its name says a thing is missing, else a request error; the
# gateway's own convention is Invalid<Thing>.NotFound. Neither kind is retried, so a wrong guess only
# changes the words the operator reads.
_MISSING_SUFFIXES = ("_NOT_FOUND", "_NOT_EXIST", "_NOT_EXISTS", ".NotFound")
# An unknown code by its HTTP status (5xx: server); anything else, 404 included, is a request error.
_BY_STATUS: dict[int, type[ApiError]] = {429: ThrottledError, 401: AuthError, 403: ForbiddenError}


# Refusals of a request signed too far from the server's time (alikafka's gateway [G] and its siblings,
# sources beside each in _CODES).
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
    """Sort an error code (and the HTTP status it came with) into its error type.

    Known codes first, then families by prefix, then a name that says something is missing, then the
    HTTP status: 429 throttled, 5xx server, 401 auth, 403 forbidden. A 404 with an unknown code stays a
    request error: the gateway's documented 404s are an unknown action or API (and an unknown key, a prefix
    above), while a missing instance or group comes as HTTP 400 with a business code.
    """
    known = _CODES.get(code)
    if known is not None:
        return known
    for prefix, cls in _PREFIXES:
        if code.startswith(prefix):
            return cls
    if code.endswith(_MISSING_SUFFIXES):
        return NotFoundError
    if http_status is not None and http_status >= 500:
        return ServerError
    return _BY_STATUS.get(http_status or 0, RequestError)
