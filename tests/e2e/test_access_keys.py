"""Access keys of IAM users through boto3 and the `aws` CLI, and requests signed with them, against the real server."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from roleport.testing import RoleportServer
from tests.conftest import ROOT_KEY, cli_env
from tests.e2e.helpers import error_of

ACCOUNT = "123456789012"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
INVALID_TOKEN = {
    "Code": "InvalidClientTokenId",
    "Message": "The security token included in the request is invalid.",
    "Status": 403,
}


@pytest.fixture
def user(iam: Any, name: Any) -> str:
    user_name = name("keys")
    iam.create_user(UserName=user_name)
    return user_name


def test_create_access_key_returns_an_akia_key_and_its_secret(iam: Any, user: str) -> None:
    key = iam.create_access_key(UserName=user)["AccessKey"]
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", key["AccessKeyId"])
    assert re.fullmatch(r"[A-Za-z0-9+/]{40}", key["SecretAccessKey"])
    assert (key["UserName"], key["Status"]) == (user, "Active")
    listed = iam.list_access_keys(UserName=user)
    assert listed["IsTruncated"] is False
    assert listed["AccessKeyMetadata"] == [
        {"UserName": user, "AccessKeyId": key["AccessKeyId"], "Status": "Active", "CreateDate": key["CreateDate"]}
    ]


def test_a_third_access_key_is_limit_exceeded(iam: Any, user: str) -> None:
    iam.create_access_key(UserName=user)
    iam.create_access_key(UserName=user)
    assert error_of(iam.create_access_key, UserName=user) == {
        "Code": "LimitExceeded",
        "Message": "Cannot exceed quota for AccessKeysPerUser: 2",
        "Status": 409,
    }
    assert len(iam.list_access_keys(UserName=user)["AccessKeyMetadata"]) == 2


def test_inactive_keys_count_toward_the_quota_and_deleting_frees_a_slot(iam: Any, user: str) -> None:
    first = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    iam.create_access_key(UserName=user)
    iam.update_access_key(UserName=user, AccessKeyId=first, Status="Inactive")
    assert error_of(iam.create_access_key, UserName=user)["Code"] == "LimitExceeded"
    iam.delete_access_key(UserName=user, AccessKeyId=first)
    iam.create_access_key(UserName=user)


def test_list_access_keys_pages(iam: Any, user: str) -> None:
    made = sorted(iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"] for _ in range(2))
    first = iam.list_access_keys(UserName=user, MaxItems=1)
    assert first["IsTruncated"] is True and len(first["AccessKeyMetadata"]) == 1
    second = iam.list_access_keys(UserName=user, MaxItems=1, Marker=first["Marker"])
    assert second["IsTruncated"] is False and "Marker" not in second
    assert sorted(k["AccessKeyId"] for k in first["AccessKeyMetadata"] + second["AccessKeyMetadata"]) == made


def test_update_access_key_switches_status(iam: Any, user: str) -> None:
    key_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    iam.update_access_key(UserName=user, AccessKeyId=key_id, Status="Inactive")
    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"][0]["Status"] == "Inactive"
    iam.update_access_key(UserName=user, AccessKeyId=key_id, Status="Active")
    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"][0]["Status"] == "Active"


def test_update_access_key_to_expired_is_invalid_input(iam: Any, user: str) -> None:
    key_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    error = error_of(iam.update_access_key, UserName=user, AccessKeyId=key_id, Status="Expired")
    assert (error["Code"], error["Status"]) == ("InvalidInput", 400)
    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"][0]["Status"] == "Active"


def test_update_access_key_to_an_unknown_status_is_validation_error(iam: Any, user: str) -> None:
    key_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    error = error_of(iam.update_access_key, UserName=user, AccessKeyId=key_id, Status="Paused")
    assert error["Code"] == "ValidationError" and "Member must satisfy enum value set" in error["Message"]


@pytest.mark.parametrize("operation", ["update_access_key", "delete_access_key"])
def test_unknown_or_foreign_access_key_is_no_such_entity(iam: Any, user: str, name: Any, operation: str) -> None:
    other = name("other")
    iam.create_user(UserName=other)
    foreign = iam.create_access_key(UserName=other)["AccessKey"]["AccessKeyId"]
    extra = {"Status": "Inactive"} if operation == "update_access_key" else {}
    for key_id in ("AKIAIOSFODNN7EXAMPLE", foreign):
        assert error_of(getattr(iam, operation), UserName=user, AccessKeyId=key_id, **extra) == {
            "Code": "NoSuchEntity",
            "Message": f"The Access Key with id {key_id} cannot be found.",
            "Status": 404,
        }
    assert iam.list_access_keys(UserName=other)["AccessKeyMetadata"][0]["Status"] == "Active"


def test_delete_access_key_removes_it(iam: Any, user: str) -> None:
    key_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    iam.delete_access_key(UserName=user, AccessKeyId=key_id)
    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"] == []
    assert error_of(iam.delete_access_key, UserName=user, AccessKeyId=key_id)["Code"] == "NoSuchEntity"


def test_get_access_key_last_used_of_an_unused_key(iam: Any, user: str) -> None:
    key_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    answer = iam.get_access_key_last_used(AccessKeyId=key_id)
    assert answer["UserName"] == user
    assert answer["AccessKeyLastUsed"] == {"ServiceName": "N/A", "Region": "N/A"}


def test_get_access_key_last_used_of_an_unknown_key_is_access_denied(iam: Any) -> None:
    assert error_of(iam.get_access_key_last_used, AccessKeyId="AKIAIOSFODNN7EXAMPLE") == {
        "Code": "AccessDenied",
        "Message": f"User: arn:aws:iam::{ACCOUNT}:root is not authorized to perform iam:GetAccessKeyLastUsed on "
        "resource: access key AKIAIOSFODNN7EXAMPLE",
        "Status": 403,
    }


# ----------------------------------------------------------------------------------- the root user's own keys


def test_list_access_keys_without_name_as_root_lists_the_root_key(iam: Any) -> None:
    assert iam.list_access_keys()["AccessKeyMetadata"] == [{"AccessKeyId": ROOT_KEY, "Status": "Active"}]


def test_root_keys_are_not_created_through_the_api(iam: Any) -> None:
    error = error_of(iam.create_access_key)
    assert (error["Code"], error["Status"]) == ("NotImplemented", 501)
    assert iam.list_access_keys()["AccessKeyMetadata"] == [{"AccessKeyId": ROOT_KEY, "Status": "Active"}]


def test_root_keys_are_not_switched_or_deleted_through_the_api(make_server: Any) -> None:
    # botocore insists on 16 characters or more for an AccessKeyId, which the shared server's "test" key is not.
    root_key = "AKIAROOTKEY000000001"
    server = make_server(access_key=root_key, secret_key="s" * 40)
    iam = server.client("iam")
    for call, extra in ((iam.update_access_key, {"Status": "Inactive"}), (iam.delete_access_key, {})):
        error = error_of(call, AccessKeyId=root_key, **extra)
        assert (error["Code"], error["Status"]) == ("NotImplemented", 501)
    assert iam.list_access_keys()["AccessKeyMetadata"] == [{"AccessKeyId": root_key, "Status": "Active"}]


def test_root_without_name_does_not_reach_user_keys(iam: Any, user: str) -> None:
    key_id = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    assert error_of(iam.delete_access_key, AccessKeyId=key_id)["Message"] == (
        f"The Access Key with id {key_id} cannot be found."
    )
    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"][0]["AccessKeyId"] == key_id


# ---------------------------------------------------------------------- requests signed with a user's own key


@pytest.fixture
def admin(iam: Any, name: Any) -> dict[str, str]:
    user_name = name("admin")
    created = iam.create_user(UserName=user_name)["User"]
    iam.attach_user_policy(UserName=user_name, PolicyArn=ADMIN)
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    return {"UserName": user_name, "UserId": created["UserId"], "Arn": created["Arn"], **key}


def _client_for(server: RoleportServer, service: str, key: dict[str, str]) -> Any:
    return server.client(service, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])


def test_user_key_signs_requests_as_that_user(server: RoleportServer, admin: dict[str, str]) -> None:
    identity = _client_for(server, "sts", admin).get_caller_identity()
    assert (identity["Arn"], identity["UserId"], identity["Account"]) == (admin["Arn"], admin["UserId"], ACCOUNT)


def test_user_with_administrator_access_can_list_roles(server: RoleportServer, admin: dict[str, str]) -> None:
    assert "Roles" in _client_for(server, "iam", admin).list_roles(MaxItems=1)


def test_user_calls_without_a_name_mean_that_user(server: RoleportServer, iam: Any, admin: dict[str, str]) -> None:
    own = _client_for(server, "iam", admin)
    assert own.get_user()["User"]["UserName"] == admin["UserName"]
    assert [k["AccessKeyId"] for k in own.list_access_keys()["AccessKeyMetadata"]] == [admin["AccessKeyId"]]
    second = own.create_access_key()["AccessKey"]
    assert second["UserName"] == admin["UserName"]
    own.update_access_key(AccessKeyId=second["AccessKeyId"], Status="Inactive")
    own.delete_access_key(AccessKeyId=second["AccessKeyId"])
    assert len(iam.list_access_keys(UserName=admin["UserName"])["AccessKeyMetadata"]) == 1


def test_inactive_key_is_refused(server: RoleportServer, iam: Any, admin: dict[str, str]) -> None:
    iam.update_access_key(UserName=admin["UserName"], AccessKeyId=admin["AccessKeyId"], Status="Inactive")
    assert error_of(_client_for(server, "iam", admin).list_roles) == INVALID_TOKEN


def test_deleted_key_is_refused(server: RoleportServer, iam: Any, admin: dict[str, str]) -> None:
    iam.delete_access_key(UserName=admin["UserName"], AccessKeyId=admin["AccessKeyId"])
    assert error_of(_client_for(server, "sts", admin).get_caller_identity) == INVALID_TOKEN


# ------------------------------------------------------------------------------------------------------ the CLI


def aws(server: RoleportServer, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["aws", *args], capture_output=True, text=True, env=env or cli_env(server), timeout=60)


def test_access_key_workflow_through_the_aws_cli(server: RoleportServer, name: Any) -> None:
    assert aws(server, "iam", "create-user", "--user-name", name("clikey")).returncode == 0
    made = aws(server, "iam", "create-access-key", "--user-name", name("clikey"))
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["AccessKey"]
    listed = aws(
        server,
        "iam",
        "list-access-keys",
        "--user-name",
        name("clikey"),
        "--query",
        "AccessKeyMetadata[].[AccessKeyId,Status]",
        "--output",
        "text",
    )
    assert listed.stdout.split() == [key["AccessKeyId"], "Active"]
    changed = aws(
        server,
        "iam",
        "update-access-key",
        "--user-name",
        name("clikey"),
        "--access-key-id",
        key["AccessKeyId"],
        "--status",
        "Inactive",
    )
    assert changed.returncode == 0, changed.stderr
    assert aws(server, "iam", "create-access-key", "--user-name", name("clikey")).returncode == 0
    third = aws(server, "iam", "create-access-key", "--user-name", name("clikey"))
    assert third.returncode != 0
    assert (
        "(LimitExceeded) when calling the CreateAccessKey operation: Cannot exceed quota for AccessKeysPerUser: 2"
    ) in third.stderr


def test_cli_signs_with_a_user_key(server: RoleportServer, admin: dict[str, str]) -> None:
    env = cli_env(server) | {
        "AWS_ACCESS_KEY_ID": admin["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": admin["SecretAccessKey"],
    }
    who = aws(server, "sts", "get-caller-identity", "--query", "Arn", "--output", "text", env=env)
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() == admin["Arn"]
