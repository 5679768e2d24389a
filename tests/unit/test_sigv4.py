"""SigV4 parse/verify against requests that botocore itself signs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import botocore.auth
import botocore.session
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.credentials import Credentials

from roleport.auth import canonical, sigv4
from roleport.errors import AwsError

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEJr//////////wEaDOpvWp+kM3a1/9+TOKEN=="
ENDPOINT = "http://localhost:4566"
SIGNED_AT = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
AMZ_DATE = "20260101T120000Z"
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access "
    "Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Wire:
    """A request as the server receives it: raw path and query, lower-case headers, body bytes."""

    method: str
    raw_path: str
    query: str
    headers: dict[str, str]
    body: bytes


class Captured(Exception):
    """Stops a botocore client right before it would send, carrying the prepared request."""

    def __init__(self, request: AWSPreparedRequest) -> None:
        super().__init__("captured")
        self.request = request


@pytest.fixture(autouse=True)
def pinned_signing_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # botocore's signers read the clock through botocore.auth.get_current_datetime (naive UTC).
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: SIGNED_AT.replace(tzinfo=None))
    yield


def on_the_wire(prepared: AWSPreparedRequest) -> Wire:
    parts = urlsplit(prepared.url)
    headers: dict[str, str] = {}
    for name, raw in prepared.headers.items():
        key = name.lower()
        value = raw.decode("latin-1") if isinstance(raw, bytes) else raw  # as an ASGI server decodes header bytes
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    headers.setdefault("host", parts.netloc)  # http.client adds Host when botocore doesn't
    body = prepared.body or b""
    return Wire(prepared.method, parts.path, parts.query, headers, body.encode() if isinstance(body, str) else body)


def signed(request: AWSRequest, service: str = "iam", token: str | None = None) -> Wire:
    botocore.auth.SigV4Auth(Credentials(AKID, SECRET, token), service, "us-east-1").add_auth(request)
    return on_the_wire(request.prepare())


def presigned(request: AWSRequest, expires: int = 900, token: str | None = None) -> Wire:
    botocore.auth.SigV4QueryAuth(Credentials(AKID, SECRET, token), "sts", "us-east-1", expires=expires).add_auth(
        request
    )
    return on_the_wire(request.prepare())


def iam_post(body: bytes = b"Action=ListRoles&Version=2010-05-08", headers: Mapping[str, str] = {}) -> AWSRequest:
    return AWSRequest("POST", f"{ENDPOINT}/", data=body, headers={**FORM, **headers})


def check(wire: Wire, secret: str = SECRET, now: datetime = SIGNED_AT) -> sigv4.SignedRequest:
    req = sigv4.parse(wire.method, wire.query, wire.headers)
    assert req is not None
    sigv4.verify(req, wire.method, wire.raw_path, wire.query, wire.headers, wire.body, secret, now)
    return req


def error_of(wire: Wire, secret: str = SECRET, now: datetime = SIGNED_AT) -> AwsError:
    with pytest.raises(AwsError) as caught:
        check(wire, secret, now)
    return caught.value


def sigv4_header(scope: str = "20260101/us-east-1/iam/aws4_request", algorithm: str = "AWS4-HMAC-SHA256") -> str:
    return f"{algorithm} Credential={AKID}/{scope}, SignedHeaders=host, Signature=ab"


def header_auth(authorization: str, **extra: str) -> dict[str, str]:
    return {"host": "localhost:4566", "x-amz-date": AMZ_DATE, "authorization": authorization, **extra}


def parse_error(headers: Mapping[str, str], query: str = "") -> AwsError:
    with pytest.raises(AwsError) as caught:
        sigv4.parse("POST", query, headers)
    return caught.value


def client_request(service: str, operation: str, params: dict[str, Any], token: str | None = None) -> Wire:
    client = botocore.session.Session().create_client(
        service,
        region_name="us-east-1",
        endpoint_url=ENDPOINT,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
    )

    def capture(request: AWSPreparedRequest, **kwargs: Any) -> None:
        raise Captured(request)

    client.meta.events.register("before-send", capture)
    with pytest.raises(Captured) as caught:
        getattr(client, operation)(**params)
    return on_the_wire(caught.value.request)


# --- requests that verify ---------------------------------------------------------------------------------------


def test_iam_post_form_body_from_botocore_client_verifies() -> None:
    wire = client_request("iam", "create_role", {"RoleName": "app", "AssumeRolePolicyDocument": '{"a": "b c"}'})

    req = check(wire)

    assert b"Action=CreateRole" in wire.body
    assert (req.access_key_id, req.scope_date, req.region, req.service) == (AKID, "20260101", "us-east-1", "iam")
    assert req.amz_date == AMZ_DATE
    assert "host" in req.signed_headers
    assert (req.presigned, req.expires, req.security_token) == (False, None, None)


def test_ec2_query_string_with_repeated_and_unicode_values_verifies() -> None:
    params = [
        ("Action", "DescribeInstances"),
        ("Version", "2016-11-15"),
        ("InstanceId", "i-2"),
        ("InstanceId", "i-1"),
        ("Filter.1.Name", "tag:Name"),
        ("Filter.1.Value.1", "café ☕ a+b/c~d*e"),
    ]
    wire = signed(AWSRequest("GET", f"{ENDPOINT}/", params=params), service="ec2")

    assert "InstanceId=i-2&InstanceId=i-1" in wire.query  # repeated keys arrive unsorted
    assert "caf%C3%A9+%E2%98%95" in wire.query  # and spaces arrive as '+'
    assert check(wire).service == "ec2"


def test_query_escapes_are_normalised_before_checking() -> None:
    params = [("Action", "DescribeInstances"), ("Version", "2016-11-15"), ("Filter.1.Value.1", "a~b/c")]
    wire = signed(AWSRequest("GET", f"{ENDPOINT}/", params=params), service="ec2")
    # The same values, escaped differently: lower-case hex and escaped unreserved characters.
    query = wire.query.replace("a~b%2Fc", "a%7Eb%2fc").replace("Version=2016-11-15", "Version=2016%2D11-15")

    assert query != wire.query
    check(replace(wire, query=query))


def test_path_with_spaces_special_characters_and_dot_segments_verifies() -> None:
    # botocore's serializer percent-encodes path members before signing; the signer then encodes them once more.
    path = "/some%20dir/a%2Bb/%E2%98%95/./skip/../x//y:z@w!$'()*,;=/"
    wire = signed(AWSRequest("GET", f"{ENDPOINT}{path}", headers={"Accept": "application/json"}))

    assert wire.raw_path == path
    check(wire)


def test_header_value_with_runs_of_spaces_verifies() -> None:
    wire = signed(iam_post(headers={"X-Custom": "a   b \t c    d"}))

    assert wire.headers["x-custom"] == "a   b \t c    d"
    check(wire)


def test_header_value_trimmed_by_the_server_still_verifies() -> None:
    wire = signed(iam_post(headers={"X-Custom": "  padded value  "}))
    headers = {**wire.headers, "x-custom": "padded value"}  # HTTP servers strip surrounding whitespace

    check(replace(wire, headers=headers))


def test_session_token_header_is_read_and_verifies() -> None:
    wire = signed(iam_post(), token=TOKEN)

    req = check(wire)

    assert req.security_token == TOKEN
    assert "x-amz-security-token" in req.signed_headers


def test_date_header_is_used_when_x_amz_date_is_absent() -> None:
    wire = signed(iam_post(headers={"Date": "placeholder, replaced by botocore"}))

    assert "x-amz-date" not in wire.headers
    assert check(wire).amz_date == AMZ_DATE


def test_unsigned_extra_header_is_fine() -> None:
    wire = signed(iam_post())
    headers = {**wire.headers, "x-forwarded-for": "10.0.0.1", "user-agent": "aws-cli/2"}

    check(replace(wire, headers=headers))


def test_presigned_url_from_botocore_client_verifies() -> None:
    client = botocore.session.Session().create_client(
        "sts", region_name="us-east-1", endpoint_url=ENDPOINT, aws_access_key_id=AKID, aws_secret_access_key=SECRET
    )
    url = client.generate_presigned_url("get_caller_identity", HttpMethod="GET", ExpiresIn=900)
    parts = urlsplit(url)

    req = check(Wire("GET", parts.path, parts.query, {"host": parts.netloc}, b""))

    assert (req.presigned, req.expires, req.service, req.signed_headers) == (True, 900, "sts", ("host",))


def test_presigned_url_with_session_token_verifies() -> None:
    request = AWSRequest("GET", f"{ENDPOINT}/", params={"Action": "GetCallerIdentity", "Version": "2011-06-15"})

    req = check(presigned(request, token=TOKEN))

    assert req.security_token == TOKEN


def test_presigned_form_body_moves_into_the_query_and_verifies() -> None:
    request = AWSRequest("POST", f"{ENDPOINT}/", data={"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    request.headers["Content-Type"] = FORM["Content-Type"]
    wire = presigned(request)

    assert wire.body == b""
    assert "Action=GetCallerIdentity" in wire.query
    check(wire)


def test_signing_key_is_derived_once_per_scope() -> None:
    wire = signed(iam_post())
    check(wire)
    hits = canonical.signing_key.cache_info().hits

    check(wire)

    assert canonical.signing_key.cache_info().hits == hits + 1


# --- requests that don't ----------------------------------------------------------------------------------------


def test_wrong_secret_is_signature_does_not_match() -> None:
    error = error_of(signed(iam_post()), secret="not-the-secret")

    assert (error.code, error.status, error.message) == ("SignatureDoesNotMatch", 403, MISMATCH)


def test_tampered_body_is_signature_does_not_match() -> None:
    wire = signed(iam_post())

    error = error_of(replace(wire, body=b"Action=DeleteRole&Version=2010-05-08&RoleName=admin"))

    assert (error.code, error.message) == ("SignatureDoesNotMatch", MISMATCH)


def test_tampered_body_under_a_declared_content_sha256_is_rejected() -> None:
    body = b"Action=ListRoles&Version=2010-05-08"
    wire = signed(iam_post(body, {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}))
    check(wire)

    error = error_of(replace(wire, body=b"Action=DeleteRole&Version=2010-05-08"))

    assert (error.code, error.message) == ("SignatureDoesNotMatch", MISMATCH)


def test_declared_unsigned_payload_is_signature_does_not_match() -> None:
    # UNSIGNED-PAYLOAD is S3's; any other service signs the body it received.
    request = AWSRequest("POST", "https://localhost:4566/", data=b"Action=ListRoles", headers=FORM)
    request.context["payload_signing_enabled"] = False
    wire = signed(request)

    assert wire.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert (error_of(wire).code, error_of(wire).message) == ("SignatureDoesNotMatch", MISMATCH)
    error = error_of(replace(wire, body=b"Action=DeleteRole&Version=2010-05-08&RoleName=admin"))
    assert (error.code, error.message) == ("SignatureDoesNotMatch", MISMATCH)


def test_scope_names_the_service_and_one_of_the_regions() -> None:
    req = check(signed(iam_post()))
    sigv4.check_scope(req, "iam", {"us-east-1"})
    with pytest.raises(AwsError) as wrong_region:
        sigv4.check_scope(req, "iam", {"eu-west-1"})
    assert (wrong_region.value.code, wrong_region.value.status) == ("SignatureDoesNotMatch", 403)
    assert wrong_region.value.message == "Credential should be scoped to a valid region, not 'us-east-1'. "
    with pytest.raises(AwsError) as wrong_service:
        sigv4.check_scope(req, "ec2", {"us-east-1"})
    assert wrong_service.value.message == "Credential should be scoped to correct service: 'ec2'. "


def test_tampered_signed_header_is_signature_does_not_match() -> None:
    wire = signed(iam_post())
    headers = {**wire.headers, "content-type": "application/json"}

    assert error_of(replace(wire, headers=headers)).code == "SignatureDoesNotMatch"


def test_tampered_presigned_query_parameter_is_signature_does_not_match() -> None:
    request = AWSRequest("GET", f"{ENDPOINT}/", params={"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    wire = presigned(request)

    error = error_of(replace(wire, query=wire.query.replace("GetCallerIdentity", "AssumeRole")))

    assert (error.code, error.message) == ("SignatureDoesNotMatch", MISMATCH)


def test_missing_host_in_signed_headers_is_rejected() -> None:
    wire = signed(iam_post())
    authorization = wire.headers["authorization"].replace("host;", "")

    error = error_of(replace(wire, headers={**wire.headers, "authorization": authorization}))

    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.message == "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."


def test_authorization_missing_signature_and_signed_headers_is_incomplete_signature() -> None:
    authorization = f"AWS4-HMAC-SHA256 Credential={AKID}/20260101/us-east-1/iam/aws4_request"

    error = parse_error(header_auth(authorization))

    assert (error.code, error.status) == ("IncompleteSignature", 400)
    assert error.message == (
        "Authorization header requires 'Signature' parameter. "
        "Authorization header requires 'SignedHeaders' parameter. "
        f"Authorization={authorization}"
    )


def test_non_sigv4_authorization_without_date_is_incomplete_signature() -> None:
    error = parse_error({"host": "localhost:4566", "authorization": f"AWS {AKID}:frJIUN8DYpKDtOLCwo//yllqDzg="})

    assert (error.code, error.status) == ("IncompleteSignature", 400)
    assert error.message == (
        "Authorization header requires 'Credential' parameter. "
        "Authorization header requires 'Signature' parameter. "
        "Authorization header requires 'SignedHeaders' parameter. "
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        f"Authorization=AWS {AKID}:frJIUN8DYpKDtOLCwo//yllqDzg="
    )


def test_unsupported_algorithm_is_incomplete_signature() -> None:
    error = parse_error(header_auth(sigv4_header(algorithm="AWS4-HMAC-SHA1")))

    assert (error.code, error.status) == ("IncompleteSignature", 400)
    assert error.message == "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1' (only AWS4-HMAC-SHA256 for now)."


def test_part_without_equal_sign_is_incomplete_signature() -> None:
    authorization = f"AWS4-HMAC-SHA256 Credential= {AKID}/20260101/us-east-1/iam/aws4_request, SignedHeaders=host"

    error = parse_error(header_auth(authorization))

    assert error.code == "IncompleteSignature"
    assert error.message == (
        f"'{AKID}/20260101/us-east-1/iam/aws4_request' not a valid key=value pair (missing equal-sign) "
        f"in Authorization header: '{authorization}'."
    )


def test_credential_without_five_elements_is_incomplete_signature() -> None:
    error = parse_error(header_auth(sigv4_header(scope="20260101/iam/aws4_request")))

    assert (error.code, error.status) == ("IncompleteSignature", 400)
    assert error.message == (
        "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
        f"got '{AKID}/20260101/iam/aws4_request'"
    )


def test_credential_with_wrong_terminator_is_signature_does_not_match() -> None:
    error = parse_error(header_auth(sigv4_header(scope="20260101/us-east-1/iam/aws5_request")))

    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.message == "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'."


def test_scope_date_other_than_the_request_date_is_signature_does_not_match() -> None:
    error = parse_error(header_auth(sigv4_header(scope="20251231/us-east-1/iam/aws4_request")))

    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.message == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
        "'20251231' != '20260101', from '20260101T120000Z'."
    )


def test_x_amz_date_not_in_basic_format_is_incomplete_signature() -> None:
    error = parse_error(header_auth(sigv4_header(), **{"x-amz-date": "2026-01-01T12:00:00Z"}))

    assert (error.code, error.status) == ("IncompleteSignature", 400)
    assert error.message == (
        "Date must be in ISO-8601 'basic format'. Got '2026-01-01T12:00:00Z'. See http://en.wikipedia.org/wiki/ISO_8601"
    )


def test_header_and_query_auth_together_is_signature_does_not_match() -> None:
    wire = signed(iam_post())

    error = parse_error(wire.headers, query="X-Amz-Algorithm=AWS4-HMAC-SHA256")

    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.message == "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."


def test_presigned_without_signature_signed_headers_or_date_is_incomplete_signature() -> None:
    credential = f"{AKID}%2F20260101%2Fus-east-1%2Fsts%2Faws4_request"
    query = f"Action=GetCallerIdentity&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}"

    error = parse_error({"host": "localhost:4566"}, query=query)

    assert (error.code, error.status) == ("IncompleteSignature", 400)
    assert error.message == (
        "AWS query-string parameters must include 'X-Amz-Signature'. "
        "AWS query-string parameters must include 'X-Amz-SignedHeaders'. "
        "AWS query-string parameters must include 'X-Amz-Date'. "
        "Re-examine the query-string parameters."
    )


def test_presigned_with_another_algorithm_is_missing_authentication_token() -> None:
    error = parse_error({"host": "localhost:4566"}, query="X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256")

    assert (error.code, error.status, error.message) == (
        "MissingAuthenticationToken",
        403,
        "Request is missing Authentication Token",
    )


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        ("0", "X-Amz-Expires must be at least 1 second"),
        ("-5", "X-Amz-Expires must be non-negative"),
        ("604801", "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
        ("soon", "X-Amz-Expires should be a number"),
    ],
)
def test_presigned_expires_outside_one_second_to_a_week_is_incomplete_signature(expires: str, message: str) -> None:
    request = AWSRequest("GET", f"{ENDPOINT}/", params={"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    wire = presigned(request, expires=900)

    error = parse_error(wire.headers, query=wire.query.replace("X-Amz-Expires=900", f"X-Amz-Expires={expires}"))

    assert (error.code, error.status, error.message) == ("IncompleteSignature", 400, message)


def test_request_without_auth_parses_to_none() -> None:
    headers = {"host": "localhost:4566", "content-type": FORM["Content-Type"]}

    assert sigv4.parse("GET", "Action=ListRoles&Version=2010-05-08", headers) is None


# --- the clock ----------------------------------------------------------------------------------------------------


def test_signed_exactly_15_minutes_ago_is_accepted() -> None:
    check(signed(iam_post()), now=SIGNED_AT + timedelta(minutes=15))


def test_signed_just_over_15_minutes_ago_is_signature_expired() -> None:
    error = error_of(signed(iam_post()), now=SIGNED_AT + timedelta(minutes=15, seconds=1))

    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.message == (
        "Signature expired: 20260101T120000Z is now earlier than 20260101T120001Z (20260101T121501Z - 15 min.)"
    )


def test_signed_exactly_15_minutes_ahead_is_accepted() -> None:
    check(signed(iam_post()), now=SIGNED_AT - timedelta(minutes=15))


def test_signed_just_over_15_minutes_ahead_is_not_yet_current() -> None:
    error = error_of(signed(iam_post()), now=SIGNED_AT - timedelta(minutes=15, seconds=1))

    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.message == (
        "Signature not yet current: 20260101T120000Z is still later than 20260101T115959Z (20260101T114459Z + 15 min.)"
    )


def test_presigned_url_is_accepted_until_it_expires() -> None:
    request = AWSRequest("GET", f"{ENDPOINT}/", params={"Action": "GetCallerIdentity", "Version": "2011-06-15"})

    check(presigned(request, expires=3600), now=SIGNED_AT + timedelta(hours=1))


def test_presigned_url_after_its_expiry_is_signature_expired() -> None:
    request = AWSRequest("GET", f"{ENDPOINT}/", params={"Action": "GetCallerIdentity", "Version": "2011-06-15"})

    error = error_of(presigned(request, expires=60), now=SIGNED_AT + timedelta(seconds=61))

    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.message == (
        "Signature expired: 20260101T120000Z is now earlier than 20260101T120001Z (20260101T120101Z - 1 min.)"
    )


_CREDENTIAL = f"{AKID}/20260101/us-east-1/iam/aws4_request"


@pytest.mark.parametrize(
    "value",
    [
        f"AWS4-HMAC-SHA256 Credential={_CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=abc123",
        f"AWS4-HMAC-SHA256 Credential={_CREDENTIAL}, SignedHeaders=, Signature=abc123",
        f"AWS4-HMAC-SHA256 Credential={_CREDENTIAL}, SignedHeaders=host, Signature=",
        "AWS4-HMAC-SHA256 Credential=, SignedHeaders=host, Signature=abc",
        f"AWS4-HMAC-SHA256 Credential={_CREDENTIAL},SignedHeaders=host,Signature=abc",
        f"AWS4-HMAC-SHA256 Credential={_CREDENTIAL}, SignedHeaders=host\t, Signature=abc",
        f"AWS4-HMAC-SHA256 Credential={_CREDENTIAL}\xa0, SignedHeaders=host, Signature=abc",
        f"AWS4-HMAC-SHA256 Credential={_CREDENTIAL}\u200b, SignedHeaders=host, Signature=abc",
        f"AWS4-HMAC-SHA256 Credential={_CREDENTIAL}, SignedHeaders=host, Signature=abc, Signature=def",
        f"AWS4-HMAC-SHA256 Credential={_CREDENTIAL}, Signature=abc, SignedHeaders=host",
        f"AWS4-HMAC-SHA256 Credential={_CREDENTIAL}, SignedHeaders=host, Signature=a b",
        f"AWS4-HMAC-SHA256  Credential={_CREDENTIAL}, SignedHeaders=host, Signature=abc",
    ],
)
def test_the_usual_header_shortcut_reads_as_the_general_parser(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = {"authorization": value, "x-amz-date": AMZ_DATE}

    def outcome() -> Any:
        try:
            return sigv4.parse("POST", "", headers)
        except AwsError as error:
            return (error.code, error.message)

    quick = outcome()
    monkeypatch.setattr(sigv4, "_usual_header", lambda _value: None)
    assert quick == outcome()
