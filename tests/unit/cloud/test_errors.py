"""How the cloud's error codes, known and unknown, are sorted into error kinds."""

from __future__ import annotations

import pytest

from exporter.cloud.errors import error_class
from tests.support.tools import ROOT

# (code, HTTP status it came with, expected kind). Known codes come from the public tables named in
# exporter/cloud/errors.py; the rest are made-up codes of each family, as a new code of the service would be.
CASES = [
    # throttling: the gateway's, alikafka's own, and any Throttling* or HTTP 429
    ("Throttling.User", 400, "throttled"),
    ("Throttling.Api", 400, "throttled"),
    ("Throttling", 400, "throttled"),
    ("Throttling.SomethingNew", 400, "throttled"),
    ("Rejected.Throttling", 400, "throttled"),
    ("ONS_SYSTEM_FLOW_CONTROL", 400, "throttled"),
    ("SomethingNew", 429, "throttled"),
    ("429", 429, "throttled"),  # no JSON body: the status is the code
    # identity: keys, signature, timestamp, STS token
    ("InvalidAccessKeyId.NotFound", 404, "auth"),
    ("InvalidAccessKeyId.Inactive", 400, "auth"),
    ("InvalidAccessKeyId.SomethingNew", 400, "auth"),
    ("SignatureDoesNotMatch", 400, "auth"),
    ("SignatureDoesNotMatch", 403, "auth"),
    ("SignatureNonceUsed", 400, "auth"),
    ("SignatureSomethingNew", 400, "auth"),
    ("IncompleteSignature", 400, "auth"),
    ("InvalidTimeStamp.Expired", 400, "auth"),
    ("InvalidTimeStamp.Format", 400, "auth"),
    ("IllegalTimestamp", 400, "auth"),
    ("MissingSecurityToken", 400, "auth"),
    ("InvalidSecurityToken.Expired", 400, "auth"),
    ("InvalidSecurityToken.Malformed", 400, "auth"),
    ("AUTH_SIGNATURE_CHECK_ERROR", 400, "auth"),  # "check the AccessKeyId and AccessKeySecret"
    ("AUTH_CAL_SIGNATURE_ERROR", 400, "auth"),
    ("AUTH_LOGIN_CHECK_ERROR", 400, "auth"),
    ("SomethingNew", 401, "auth"),
    # permission: RAM, risk control, alikafka's permission and ownership checks, HTTP 403
    ("Forbidden.RAM", 403, "forbidden"),
    ("Forbidden.RiskControl", 403, "forbidden"),
    ("Forbidden.SomethingNew", 400, "forbidden"),
    ("NoPermission", 403, "forbidden"),
    ("AUTH_PERMISSION_CHECK_ERROR", 400, "forbidden"),
    ("AUTH_RESOURCE_OWNER_ERROR", 400, "forbidden"),
    ("AUTH_SERVICE_CHECK_ERROR", 400, "forbidden"),
    ("AUTH_REQUEST_NOT_ALLOWED", 400, "forbidden"),
    ("AUTH_SOMETHING_NEW", 400, "forbidden"),
    ("SomethingNew", 403, "forbidden"),
    ("403", 403, "forbidden"),
    # a missing instance, group or topic
    ("BIZ_SUBSCRIPTION_NOT_FOUND", 400, "not_found"),
    ("BIZ_TOPIC_NOT_FOUND", 400, "not_found"),
    ("BIZ_INSTANCE_STATUS_ERROR", 400, "not_found"),
    ("INSTANCE_NOT_FOUND", 400, "not_found"),
    ("Forbidden.InstanceNotFound", 404, "not_found"),
    ("BIZ_SOMETHING_NOT_FOUND", 400, "not_found"),
    ("BIZ_CONSUMER_NOT_EXIST", 400, "not_found"),  # in no public source: sorted by its name alone
    ("InvalidSomething.NotFound", 400, "not_found"),
    # the service failed
    ("InternalError", 500, "server"),
    ("ServiceUnavailable", 503, "server"),
    ("ONS_SYSTEM_ERROR", 400, "server"),
    ("ONS_SYSTEM_ERROR", 200, "server"),  # HTTP 200 with Success false
    ("AgentBusinessError", 400, "server"),
    ("AgentError", 400, "server"),
    ("SomethingNew", 500, "server"),
    ("SomethingNew", 502, "server"),
    ("502", 502, "server"),
    # the request itself: unknown action or API (404s, not a missing resource), bad parameters, the rest
    ("InvalidAction.NotFound", 404, "request"),
    ("InvalidApi.NotFound", 404, "request"),
    ("SomethingNew", 404, "request"),
    ("404", 404, "request"),
    ("BIZ_FIELD_CHECK_INVALID", 400, "request"),
    ("BIZ_SOMETHING_NEW", 400, "request"),
    ("MissingParameter.RegionId", 400, "request"),
    ("InvalidParameter", 400, "request"),
    ("InvalidVersion", 400, "request"),
    ("SomethingNew", 400, "request"),
    ("SomethingNew", None, "request"),
]


@pytest.mark.parametrize(("code", "status", "kind"), CASES)
def test_error_classification(code: str, status: int | None, kind: str) -> None:
    """Each code (with the HTTP status it came with) gets its kind; retryable exactly when throttled or server."""
    cls = error_class(code, status)
    assert cls.kind == kind
    assert cls.retryable == (kind in ("throttled", "server"))


def test_named_codes_have_a_public_source() -> None:
    """The two codes no public source shows are not named in the table, and the simulator does not send them."""
    root = ROOT
    for path in [root / "exporter" / "cloud" / "errors.py", *sorted((root / "exporter" / "simulator").glob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        assert "BIZ_INSTANCE_NOT_FOUND" not in text, path
        assert "BIZ_CONSUMER_NOT_EXIST" not in text, path
