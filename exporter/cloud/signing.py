"""Request signing for Alibaba Cloud RPC APIs: ACS3-HMAC-SHA256 ("v3") and HMAC-SHA1 ("v1").

Pure functions with no I/O, so the client signs with them and the simulator verifies with the
same canonicalisation; both are pinned by the published DescribeRegions example and by
independently constructed vectors in the tests.

Naming: Alibaba's documents call the HMAC-SHA1 RPC scheme "signature method V2", while its wire
parameter is ``SignatureVersion=1.0``; this project calls it ``v1`` after the wire value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote

V3_ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def percent_encode(value: str) -> str:
    """Encode per RFC 3986 as the RPC signers require: only ``A-Za-z0-9-_.~`` stay literal.

    ``quote`` with ``safe="~"`` turns space into ``%20`` (never ``+``), ``*`` into ``%2A`` and
    ``/`` into ``%2F``, with upper-case hex and one escape per UTF-8 byte.
    """
    return quote(value, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Sort encoded ``name=value`` pairs by encoded name (byte order) and join them with ``&``."""
    pairs = sorted((percent_encode(k), percent_encode(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def v1_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """The HMAC-SHA1 string to sign: ``METHOD&%2F&pct(canonical query)``; ``Signature`` is excluded."""
    signed = {k: v for k, v in params.items() if k != "Signature"}
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(signed))}"


def v1_signature(secret: str, method: str, params: Mapping[str, str]) -> str:
    """Base64 HMAC-SHA1 of the string to sign, keyed with ``secret + "&"``."""
    digest = hmac.new(
        (secret + "&").encode(), v1_string_to_sign(method, params).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


def v3_canonical_request(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    """The ACS3 canonical request: method, URI, query, signed headers and the payload hash.

    ``signed_headers`` are lower-case names; each must be present in ``headers`` (any case).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    names = sorted(signed_headers)
    canonical_headers = "".join(f"{n}:{lowered[n].strip()}\n" for n in names)
    return "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query(query),
            canonical_headers,
            ";".join(names),
            payload_hash,
        ]
    )


def v3_string_to_sign(canonical_request: str) -> str:
    """``ACS3-HMAC-SHA256\\n`` followed by the hex SHA-256 of the canonical request."""
    return f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"


def v3_signature(secret: str, canonical_request: str) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed with the bare secret (no ``&``)."""
    return hmac.new(
        secret.encode(), v3_string_to_sign(canonical_request).encode(), hashlib.sha256
    ).hexdigest()


def v3_signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """The headers a v3 request signs: ``host``, ``content-type`` and every ``x-acs-*`` header."""
    names = {k.lower() for k in headers}
    return sorted(n for n in names if n in ("host", "content-type") or n.startswith("x-acs-"))


def v3_authorization(access_key_id: str, signed_headers: Iterable[str], signature: str) -> str:
    """The ``Authorization`` header value of a v3 request."""
    return (
        f"{V3_ALGORITHM} Credential={access_key_id},"
        f"SignedHeaders={';'.join(sorted(signed_headers))},Signature={signature}"
    )


def parse_v3_authorization(value: str) -> tuple[str, list[str], str] | None:
    """Split an ``Authorization`` header into (access key id, signed header names, signature).

    Returns None when the header is not a well-formed ACS3-HMAC-SHA256 value.
    """
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != V3_ALGORITHM:
        return None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            return None
        fields[key] = val
    try:
        return fields["Credential"], fields["SignedHeaders"].split(";"), fields["Signature"]
    except KeyError:
        return None
