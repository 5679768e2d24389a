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


def signed_post(url: str, service: str, form: dict[str, str], key: str, secret: str) -> tuple[int, str]:
    """A raw form POST signed with SigV4 by botocore, for requests no generated client would send."""
    import urllib.error
    import urllib.request
    from urllib.parse import urlencode

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(key, secret), service, "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=prepared.body, method="POST", headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(raw, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()
