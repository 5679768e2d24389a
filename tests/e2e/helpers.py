"""Small helpers shared by the end-to-end suites."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError


def error_of(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The AWS error a call fails with: code, message and HTTP status."""
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return {
        "Code": caught.value.response["Error"]["Code"],
        "Message": caught.value.response["Error"]["Message"],
        "Status": caught.value.response["ResponseMetadata"]["HTTPStatusCode"],
    }


def signed_post(
    url: str,
    service: str,
    form: dict[str, str],
    key: str,
    secret: str,
    *,
    region: str = "us-east-1",
    unsigned_payload: bool = False,
    sent_body: bytes | None = None,
) -> tuple[int, str]:
    """A raw form POST signed with SigV4 by botocore, for requests no generated client would send: signed for any
    region, with x-amz-content-sha256: UNSIGNED-PAYLOAD as botocore signs S3 over HTTPS, or sent with another body
    than the one signed."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlencode

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    # botocore declares an unsigned payload only over HTTPS; the host it signs is the same either way.
    signed_url = url.replace("http://", "https://", 1) if unsigned_payload else url
    request = AWSRequest(
        method="POST",
        url=signed_url + "/",
        data=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    request.context["payload_signing_enabled"] = not unsigned_payload
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    prepared = request.prepare()
    body = prepared.body if sent_body is None else sent_body
    raw = urllib.request.Request(url + "/", data=body, method="POST", headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(raw, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()
