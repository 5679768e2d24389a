"""Helpers that make IAM users and role sessions on a test server and hand out clients signed as them."""

from __future__ import annotations

from typing import Any

from roleport.testing import RoleportServer
from tests.policy_documents import allow as allow  # re-exported: the e2e suites take them from here
from tests.policy_documents import deny as deny
from tests.policy_documents import policy as policy


def user_with_key(server: RoleportServer, iam: Any, user_name: str, *statements: dict[str, Any]) -> dict[str, str]:
    """A user with an access key and, when statements are given, one inline policy holding them."""
    iam.create_user(UserName=user_name)
    if statements:
        iam.put_user_policy(UserName=user_name, PolicyName="test", PolicyDocument=policy(*statements))
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    return {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def client_as(server: RoleportServer, service: str, credentials: dict[str, str]) -> Any:
    return server.client(
        service,
        access_key=credentials["key"],
        secret_key=credentials["secret"],
        session_token=credentials.get("token"),
    )


def session_credentials(assumed: dict[str, Any]) -> dict[str, str]:
    creds = assumed["Credentials"]
    return {"key": creds["AccessKeyId"], "secret": creds["SecretAccessKey"], "token": creds["SessionToken"]}
