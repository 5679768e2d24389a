"""Helpers that make IAM users and role sessions on a test server and hand out clients signed as them."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Server


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def user_with_key(server: Server, iam: Any, user_name: str, *statements: dict[str, Any]) -> dict[str, str]:
    """A user with an access key and, when statements are given, one inline policy holding them."""
    iam.create_user(UserName=user_name)
    if statements:
        iam.put_user_policy(UserName=user_name, PolicyName="test", PolicyDocument=policy(*statements))
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    return {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def client_as(server: Server, service: str, credentials: dict[str, str]) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=credentials["key"],
        aws_secret_access_key=credentials["secret"],
        aws_session_token=credentials.get("token"),
        config=Config(retries={"max_attempts": 1}),
    )


def session_credentials(assumed: dict[str, Any]) -> dict[str, str]:
    creds = assumed["Credentials"]
    return {"key": creds["AccessKeyId"], "secret": creds["SecretAccessKey"], "token": creds["SessionToken"]}
