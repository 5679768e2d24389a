"""AWS Signature Version 4: read the auth a request carries (header or presigned query) and verify it."""

from __future__ import annotations

import calendar
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import NamedTuple
from urllib.parse import unquote_plus

from roleport.auth import canonical
from roleport.errors import AwsError

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = canonical.TERMINATOR
SKEW_SECONDS = 15 * 60  # AWS accepts header-signed requests up to 15 minutes either side of its clock
MAX_EXPIRES = 604_800  # a presigned URL lives at most 7 days (signing keys are scoped to a date)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details."
)
HOST_NOT_SIGNED = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
BOTH_AUTH_KINDS = "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."

_AMZ_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")
_HEADER_PARTS = ("Credential", "Signature", "SignedHeaders")
_USUAL_START = "AWS4-HMAC-SHA256 Credential="  # how SDKs begin the Authorization header (_usual_header)
_QUERY_PARTS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date")


class SignedRequest(NamedTuple):
    """The SigV4 auth one request carries, as read by parse(); verify() decides whether it holds. Immutable; a named
    tuple rather than a frozen dataclass, which costs a call per field to make, and one is made for every request."""

    access_key_id: str
    scope_date: str  # YYYYMMDD from the credential scope
    region: str
    service: str  # e.g. "iam", "ec2", "sts"
    signed_headers: tuple[str, ...]  # lower-case, as listed in SignedHeaders
    signature: str
    amz_date: str  # the X-Amz-Date value (YYYYMMDDTHHMMSSZ)
    security_token: str | None  # X-Amz-Security-Token (header or query), None when absent
    presigned: bool  # True when the auth came in the query string
    expires: int | None  # X-Amz-Expires for presigned requests


def parse(method: str, query_string: str, headers: Mapping[str, str]) -> SignedRequest | None:
    """headers: lower-case names. Returns None when the request carries no SigV4 auth at all (neither an
    Authorization header nor X-Amz-Algorithm/X-Amz-Credential in the query); raises AwsError for malformed auth.
    `method` is not needed to read the auth; it is accepted so parse and verify take the same request parts."""
    authorization = headers.get("authorization")
    query = _auth_query(query_string) if "X-Amz-" in query_string else None
    if authorization is not None:
        if query is not None and "X-Amz-Algorithm" in query:
            raise _mismatch(BOTH_AUTH_KINDS)
        return _parse_header(authorization, headers)
    return None if query is None else _parse_query(query)


def verify(
    req: SignedRequest,
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_key: str,
    now: datetime,
) -> None:
    """Raises AwsError when the signature is wrong or the request is outside AWS's time window; returns None when
    valid. Checks run in AWS's order: clock, host signed, scope date, then the signature itself."""
    _check_clock(req, now)
    if "host" not in req.signed_headers:
        raise _mismatch(HOST_NOT_SIGNED)
    if req.scope_date != req.amz_date[:8]:
        raise _mismatch(_scope_date_message(req.scope_date, req.amz_date))
    payload = canonical.payload_hash(body)
    text = canonical.canonical_request(
        method, raw_path, query_string, headers, req.signed_headers, req.presigned, payload
    )
    scope = f"{req.scope_date}/{req.region}/{req.service}/{TERMINATOR}"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{req.amz_date}\n{scope}\n{digest}"
    key = canonical.signing_key(secret_key, req.scope_date, req.region, req.service)
    expected = key.hexdigest(string_to_sign.encode("utf-8", "surrogatepass"))
    if not hmac.compare_digest(expected.encode("ascii"), req.signature.encode("utf-8", "replace")):
        raise _mismatch(SIGNATURE_MISMATCH)


def check_scope(req: SignedRequest, service: str, regions: Collection[str]) -> None:
    """Raises SignatureDoesNotMatch unless the credential scope names `service` and one of `regions`: a signature
    is good for one service in one region, however valid it is otherwise. AWS's texts, each ending in a space as it
    sends them, reported together ("Credential should be scoped to a valid region, not 'ap-southeast-2'. " from
    STS, cognitect-labs/aws-api#27; "Credential should be scoped to correct service: 'cloudformation'. ",
    timkay/aws#111)."""
    problems = []
    if req.region not in regions:
        problems.append(f"Credential should be scoped to a valid region, not '{req.region}'. ")
    if req.service != service:
        problems.append(f"Credential should be scoped to correct service: '{service}'. ")
    if problems:
        raise _mismatch("".join(problems))


# --- reading the auth -------------------------------------------------------------------------------------------


def _parse_header(authorization: str, headers: Mapping[str, str]) -> SignedRequest:
    value = authorization.strip()
    raw_date = headers.get("x-amz-date")
    if raw_date is not None and (usual := _usual_header(value)) is not None:
        # The form every SDK sends, read as the general path below reads it, minus the checks it cannot fail.
        amz_date = _checked_amz_date(raw_date)
        akid, scope_date, region, service = _credential_scope(usual[0], amz_date)
        signed = _signed_header_names(usual[1])
        token = headers.get("x-amz-security-token")
        return SignedRequest(akid, scope_date, region, service, signed, usual[2], amz_date, token, False, None)
    algorithm, _, rest = value.replace("\t", " ").partition(" ")
    params = _header_params(algorithm, rest, value)
    if raw_date is None and (http_date := headers.get("date")) is not None:
        raw_date = _http_date_as_amz(http_date)
    missing = [f"Authorization header requires '{name}' parameter." for name in _HEADER_PARTS if name not in params]
    if raw_date is None:
        missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if missing or raw_date is None:
        raise _incomplete(" ".join(missing) + f" Authorization={value}")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{algorithm}' (only {ALGORITHM} for now).")
    amz_date = _checked_amz_date(raw_date)
    akid, scope_date, region, service = _credential_scope(params["Credential"], amz_date)
    return SignedRequest(
        access_key_id=akid,
        scope_date=scope_date,
        region=region,
        service=service,
        signed_headers=_signed_header_names(params["SignedHeaders"]),
        signature=params["Signature"],
        amz_date=amz_date,
        security_token=headers.get("x-amz-security-token"),
        presigned=False,
        expires=None,
    )


def _usual_header(value: str) -> tuple[str, str, str] | None:
    """Credential, SignedHeaders and Signature of an Authorization header in the form SDKs write: each part once, in
    this order, none holding a comma or whitespace, Credential and Signature non-empty (emptiness means missing);
    None for any other form, which the general reading handles the same way. String methods, not a regex: a regex
    spent more on this than the rest of reading the auth."""
    words = value.split()  # whitespace as str.split() and the general reading see it
    if len(words) != 4 or not value.startswith(_USUAL_START):
        return None
    _, credential, signed, signature = words
    if not (credential.endswith(",") and signed.startswith("SignedHeaders=") and signed.endswith(",")):
        return None
    if not signature.startswith("Signature="):
        return None
    credential, signed, signature = credential[11:-1], signed[14:-1], signature[10:]
    if not credential or not signature or "," in credential or "," in signed or "," in signature:
        return None
    return credential, signed, signature


def _header_params(algorithm: str, rest: str, value: str) -> dict[str, str]:
    """Key=value parts after the algorithm; AWS separates them with commas and/or spaces, and the last one wins."""
    params: dict[str, str] = {}
    for part in rest.replace(",", " ").split():
        key, eq, val = part.partition("=")
        if not eq:
            # Only a header that claims SigV4 is held to its syntax; others fall through to the "requires" message.
            if algorithm == ALGORITHM:
                raise _incomplete(
                    f"'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{value}'."
                )
            continue
        # An empty Credential or Signature is as good as missing; an empty SignedHeaders fails the host check later.
        if val or key == "SignedHeaders":
            params[key] = val
    return params


def _auth_query(query_string: str) -> dict[str, str] | None:
    """The decoded X-Amz-* parameters (first value of each), or None when the query carries no SigV4 auth."""
    params: dict[str, str] = {}
    for pair in query_string.split("&"):
        name, _, value = pair.partition("=")
        if name.startswith("X-Amz-") and name not in params:
            params[name] = unquote_plus(value) if "%" in value or "+" in value else value
    if "X-Amz-Algorithm" in params or "X-Amz-Credential" in params:
        return params
    return None


def _parse_query(query: dict[str, str]) -> SignedRequest:
    algorithm = query.get("X-Amz-Algorithm")
    if algorithm and algorithm != ALGORITHM:
        raise AwsError("MissingAuthenticationToken", "Request is missing Authentication Token", status=403)
    missing = [f"AWS query-string parameters must include '{name}'." for name in _QUERY_PARTS if not query.get(name)]
    if missing:
        raise _incomplete(" ".join(missing) + " Re-examine the query-string parameters.")
    amz_date = _checked_amz_date(query["X-Amz-Date"])
    expires = _checked_expires(query.get("X-Amz-Expires"))
    akid, scope_date, region, service = _credential_scope(query["X-Amz-Credential"], amz_date)
    return SignedRequest(
        access_key_id=akid,
        scope_date=scope_date,
        region=region,
        service=service,
        signed_headers=_signed_header_names(query["X-Amz-SignedHeaders"]),
        signature=query["X-Amz-Signature"],
        amz_date=amz_date,
        security_token=query.get("X-Amz-Security-Token"),
        presigned=True,
        expires=expires,
    )


def _credential_scope(credential: str, amz_date: str) -> tuple[str, str, str, str]:
    parts = _credential_parts(credential)
    if len(parts) != 5:
        raise _incomplete(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got '{credential}'"
        )
    akid, scope_date, region, service, terminator = parts
    problems = []
    if terminator != TERMINATOR:
        problems.append(f"Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator}'.")
    if scope_date != amz_date[:8]:
        problems.append(_scope_date_message(scope_date, amz_date))
    if problems:
        # AWS reports every scope problem at once, in one message.
        raise _mismatch(" ".join(problems))
    return akid, scope_date, region, service


@functools.lru_cache(maxsize=256)
def _credential_parts(credential: str) -> tuple[str, ...]:
    # AWS ignores trailing slashes before counting the elements. A key signs with the same scope all day.
    return tuple(credential.rstrip("/").split("/"))


@functools.lru_cache(maxsize=256)
def _signed_header_names(value: str) -> tuple[str, ...]:
    # A client signs the same few header sets over and over.
    names = value.lower().split(";")
    return tuple(names) if "" not in names else tuple(name for name in names if name)


def _checked_amz_date(value: str) -> str:
    if _amz_epoch(value) is None:
        raise _bad_date(value)
    return value


def _http_date_as_amz(value: str) -> str:
    """The Date header (RFC 7231) in the basic format the string to sign uses; left as is when it won't parse, so
    the basic-format check reports it in AWS's words."""
    if _AMZ_DATE.fullmatch(value):
        return value
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return value
    if parsed.tzinfo is None:  # "-0000" means UTC with no claim about the local zone (RFC 5322)
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime(AMZ_DATE_FORMAT)


def _checked_expires(value: str | None) -> int | None:
    # Wording from S3's AuthorizationQueryParametersError, the only service that documents these checks.
    if value is None:
        return None
    try:
        expires = int(value)
    except ValueError:
        raise _incomplete("X-Amz-Expires should be a number") from None
    if expires < 0:
        raise _incomplete("X-Amz-Expires must be non-negative")
    if expires == 0:
        raise _incomplete("X-Amz-Expires must be at least 1 second")
    if expires > MAX_EXPIRES:
        raise _incomplete(f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}")
    return expires


# --- checking it --------------------------------------------------------------------------------------------------


def _check_clock(req: SignedRequest, now: datetime) -> None:
    signed_at = _amz_epoch(req.amz_date)
    if signed_at is None:
        raise _bad_date(req.amz_date)
    # Whole seconds, like the timestamps AWS prints; a naive `now` is taken as UTC.
    now_s = int(now.timestamp()) if now.tzinfo is not None else calendar.timegm(now.timetuple())
    window = req.expires if req.presigned and req.expires is not None else SKEW_SECONDS
    if now_s - signed_at > window:
        raise _mismatch(
            f"Signature expired: {req.amz_date} is now earlier than {_amz(now_s - window)} "
            f"({_amz(now_s)} - {_duration(window)}.)"
        )
    if signed_at - now_s > SKEW_SECONDS:
        raise _mismatch(
            f"Signature not yet current: {req.amz_date} is still later than {_amz(now_s + SKEW_SECONDS)} "
            f"({_amz(now_s)} + {_duration(SKEW_SECONDS)}.)"
        )


# --- small helpers ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _amz_epoch(value: str) -> int | None:
    """Seconds since the epoch for a YYYYMMDDTHHMMSSZ value, or None when it isn't a real time in that format."""
    match = _AMZ_DATE.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = map(int, match.groups())
    try:
        return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())
    except ValueError:
        return None


def _amz(epoch_seconds: int) -> str:
    return time.strftime(AMZ_DATE_FORMAT, time.gmtime(epoch_seconds))


def _duration(seconds: int) -> str:
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} sec"


def _scope_date_message(scope_date: str, amz_date: str) -> str:
    return (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'."
    )


def _bad_date(value: str) -> AwsError:
    return _incomplete(
        f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
    )


def _incomplete(message: str) -> AwsError:
    return AwsError("IncompleteSignature", message, status=400)


def _mismatch(message: str) -> AwsError:
    return AwsError("SignatureDoesNotMatch", message, status=403)
