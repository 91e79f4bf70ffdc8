"""Signatures match the published example and vectors built by hand from the documented algorithms."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from exporter.cloud import signing

PUBLISHED = {
    "AccessKeyId": "testid", "Action": "DescribeRegions", "Format": "XML", "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z", "Version": "2014-05-26",
}


def test_published_describe_regions_example() -> None:
    """The documented ECS DescribeRegions example gives OLeaidS1JvxuMvnyHOwuJ+uX5qY=."""
    assert signing.v1_signature("testsecret", "GET", PUBLISHED) == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    assert signing.v1_string_to_sign("GET", PUBLISHED).startswith(
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML")


def test_signature_parameter_is_not_signed() -> None:
    """Adding Signature to the parameters does not change the signature."""
    with_sig = {**PUBLISHED, "Signature": "whatever"}
    assert signing.v1_signature("testsecret", "GET", with_sig) == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_v1_post_vector_by_hand() -> None:
    """A POST GetConsumerProgress request with non-ASCII and reserved characters, signed by hand."""
    params = {"Action": "GetConsumerProgress", "ConsumerId": "grp a*b~/ü", "Tag.10.Key": "k", "Tag.2.Key": "k"}
    # Sorted by encoded name: ConsumerId < Tag.10.Key < Tag.2.Key (byte order); space -> %20, * -> %2A,
    # ~ literal, / -> %2F, ü -> %C3%BC.
    canonical = "Action=GetConsumerProgress&ConsumerId=grp%20a%2Ab~%2F%C3%BC&Tag.10.Key=k&Tag.2.Key=k"
    assert signing.canonical_query(params) == canonical
    expected_sts = "POST&%2F&" + canonical.replace("%", "%25").replace("=", "%3D").replace("&", "%26")
    assert signing.v1_string_to_sign("post", params) == expected_sts
    digest = hmac.new(b"s3cr3t&", expected_sts.encode(), hashlib.sha1).digest()
    assert signing.v1_signature("s3cr3t", "POST", params) == base64.b64encode(digest).decode()


def test_v3_vector_by_hand() -> None:
    """ACS3-HMAC-SHA256 over a canonical request assembled line by line from the documentation."""
    headers = {
        "host": "alikafka.cn-hangzhou.aliyuncs.com",
        "x-acs-action": "GetConsumerProgress",
        "x-acs-version": "2019-09-16",
        "x-acs-date": "2026-11-25T10:00:00Z",
        "x-acs-signature-nonce": "n-1",
        "x-acs-content-sha256": signing.EMPTY_SHA256,
        "Accept": "application/json",
    }
    query = {"RegionId": "cn-hangzhou", "InstanceId": "alikafka_post-cn-x", "ConsumerId": "g 1"}
    names = signing.v3_signed_header_names(headers)
    assert names == ["host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce",
                     "x-acs-version"]
    canonical = (
        "POST\n/\nConsumerId=g%201&InstanceId=alikafka_post-cn-x&RegionId=cn-hangzhou\n"
        "host:alikafka.cn-hangzhou.aliyuncs.com\nx-acs-action:GetConsumerProgress\n"
        f"x-acs-content-sha256:{signing.EMPTY_SHA256}\nx-acs-date:2026-11-25T10:00:00Z\n"
        "x-acs-signature-nonce:n-1\nx-acs-version:2019-09-16\n\n"
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n"
        f"{signing.EMPTY_SHA256}"
    )
    assert signing.v3_canonical_request("POST", "/", query, headers, names, signing.EMPTY_SHA256) == canonical
    string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(b"secret", string_to_sign.encode(), hashlib.sha256).hexdigest()
    assert signing.v3_signature("secret", canonical) == expected
    auth = signing.v3_authorization("AKID", names, expected)
    assert signing.parse_v3_authorization(auth) == ("AKID", names, expected)


def test_parse_v3_authorization_rejects_garbage() -> None:
    """Malformed Authorization values parse to None."""
    for value in ("", "Bearer x", "ACS3-HMAC-SHA256 Credential=a", "ACS3-HMAC-SHA256 nonsense"):
        assert signing.parse_v3_authorization(value) is None


@given(st.text())
def test_percent_encoding_round_trips_and_uses_only_unreserved(text: str) -> None:
    """Any string encodes to unreserved characters plus upper-case %XY escapes, and decodes back."""
    encoded = signing.percent_encode(text)
    assert re.fullmatch(r"(?:[A-Za-z0-9\-_.~]|%[0-9A-F]{2})*", encoded)
    assert unquote(encoded) == text


@given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=6))
def test_canonical_query_is_order_independent(params: dict[str, str]) -> None:
    """The canonical query depends on the parameters, not on their insertion order."""
    reordered = dict(reversed(list(params.items())))
    assert signing.canonical_query(params) == signing.canonical_query(reordered)
