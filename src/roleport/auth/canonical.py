"""What a SigV4 signature signs, and the key that signs it: the canonical request (AWS's "Create a canonical
request" steps for services other than S3) and the derived signing key, ready to HMAC the string to sign."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import quote_from_bytes, unquote_to_bytes

TERMINATOR = "aws4_request"  # the credential scope's last element
# Canonical query text is unreserved characters plus upper-case escapes of anything else; str.translate finds
# stray characters far faster than a per-character regex, and the regex then only has to visit the '%' signs.
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_NOT_IN_COMPONENT = str.maketrans("", "", _UNRESERVED + "%")
_NOT_IN_QUERY = str.maketrans("", "", _UNRESERVED + "%=&")
_NON_CANONICAL_ESCAPE = re.compile(r"%(?![0-9A-F]{2})|%(?:2[DE]|3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE])")


def canonical_request(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    presigned: bool,
    payload_hash: str,
) -> str:
    """headers: lower-case names; signed_headers: the lower-case names the request says it signed, in its order."""
    canonical_headers = "".join([f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed_headers])
    return "\n".join(
        (
            method.upper(),
            _canonical_uri(raw_path),
            _canonical_query(query_string, presigned),
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        )
    )


def _canonical_uri(raw_path: str) -> str:
    # Non-S3 services sign the normalised path encoded once more on top of its wire form (botocore does the same).
    if raw_path in ("", "/"):
        return "/"
    return quote_from_bytes(_wire_bytes(_remove_dot_segments(raw_path)), safe="/~")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal, also dropping empty segments as AWS requires."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    lead = "/" if path.startswith("/") else ""
    trail = "/" if path.endswith("/") and segments else ""
    return lead + "/".join(segments) + trail


def _canonical_query(query_string: str, presigned: bool) -> str:
    if not query_string:
        return ""
    # One scan of the whole string usually proves every part canonical already, sparing a check per part.
    as_sent = _is_canonical(query_string, _NOT_IN_QUERY)
    pairs = []
    for pair in query_string.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if not as_sent:
            name = _canonical_component(name)
            value = _canonical_component(value)
        elif "=" in value:
            value = _canonical_component(value)  # a bare '=' inside a value must be escaped
        if presigned and name == "X-Amz-Signature":  # the signature cannot sign itself
            continue
        pairs.append((name, value))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def _canonical_component(text: str) -> str:
    """Decode as the service will (form rules: '+' is a space), then encode everything but unreserved characters."""
    if _is_canonical(text, _NOT_IN_COMPONENT):
        return text
    return quote_from_bytes(unquote_to_bytes(_wire_bytes(text).replace(b"+", b" ")), safe="-_.~")


def _is_canonical(text: str, strays: dict[int, int | None]) -> bool:
    return not text.translate(strays) and ("%" not in text or not _NON_CANONICAL_ESCAPE.search(text))


def payload_hash(body: bytes) -> str:
    """What the canonical request puts for the body: always its SHA-256, whatever x-amz-content-sha256 declares.
    Declaring UNSIGNED-PAYLOAD (or another digest) is S3's option only; other services hash the body they got, so
    a signature made over a declared value does not match, and a captured request can't carry a swapped body
    (only S3 supports UNSIGNED-PAYLOAD, others answer SignatureDoesNotMatch: apache/opendal-reqsign#346)."""
    return hashlib.sha256(body).hexdigest()


@functools.lru_cache(maxsize=1024)
def signing_key(secret_key: str, scope_date: str, region: str, service: str) -> SigningKey:
    key = hmac.digest(f"AWS4{secret_key}".encode(), scope_date.encode(), "sha256")
    for part in (region, service, TERMINATOR):
        key = hmac.digest(key, part.encode(), "sha256")
    return SigningKey(key)


class SigningKey:
    """A derived signing key with SHA-256 already fed its two HMAC pads (RFC 2104), so signing a message costs two
    copies and two small updates. OpenSSL 3's one-shot HMAC looks the digest up again on every call, which made it
    the costliest step of checking a signature."""

    __slots__ = ("inner", "key", "outer")

    def __init__(self, key: bytes) -> None:
        self.key = key
        block = key.ljust(64, b"\0")  # SHA-256's block; a derived key is 32 bytes, never longer
        self.inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self.outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def hexdigest(self, message: bytes) -> str:
        """HMAC-SHA256 of the message under this key, in hex."""
        inner = self.inner.copy()
        inner.update(message)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def _wire_bytes(text: str) -> bytes:
    # The server decodes the request line as latin-1, which maps each character back to the byte that was sent.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
