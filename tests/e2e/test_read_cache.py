"""The root's repeated IAM reads are answered from memory while the database is unchanged (read_cache.py): these
tests hold that such an answer is never stale, whoever changed the database, and that every call is still
authenticated and validated."""

from __future__ import annotations

from typing import Any

import pytest

from roleport.testing import RoleportServer
from tests.conftest import EC2_TRUST
from tests.e2e.helpers import error_of
from tests.e2e.principals import allow, client_as, user_with_key


def _profile(iam: Any, name: str) -> dict[str, Any]:
    return dict(iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"])


def test_a_repeated_read_gives_the_same_answer_under_a_new_request_id(server: RoleportServer, name: Any) -> None:
    iam = server.client("iam")
    iam.create_instance_profile(InstanceProfileName=name("same"), Tags=[{"Key": "k", "Value": "v"}])
    answers = [iam.get_instance_profile(InstanceProfileName=name("same")) for _ in range(5)]
    assert all(answer["InstanceProfile"] == answers[0]["InstanceProfile"] for answer in answers)
    assert len({answer["ResponseMetadata"]["RequestId"] for answer in answers}) == 5


def test_every_kind_of_write_is_seen_by_the_next_read(server: RoleportServer, name: Any) -> None:
    iam = server.client("iam")
    profile, role = name("seen"), name("seen-role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=EC2_TRUST)
    iam.create_instance_profile(InstanceProfileName=profile)
    assert _profile(iam, profile)["Roles"] == []
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
    assert [r["RoleName"] for r in _profile(iam, profile)["Roles"]] == [role]
    iam.tag_instance_profile(InstanceProfileName=profile, Tags=[{"Key": "a", "Value": "1"}])
    assert _profile(iam, profile)["Tags"] == [{"Key": "a", "Value": "1"}]
    iam.update_role(RoleName=role, Description="changed")
    assert _profile(iam, profile)["Roles"][0]["Description"] == "changed"
    assert iam.get_role(RoleName=role)["Role"]["Description"] == "changed"
    iam.update_role(RoleName=role, Description="again")
    assert iam.get_role(RoleName=role)["Role"]["Description"] == "again"
    iam.remove_role_from_instance_profile(InstanceProfileName=profile, RoleName=role)
    assert _profile(iam, profile)["Roles"] == []
    first_id = _profile(iam, profile)["InstanceProfileId"]
    iam.delete_instance_profile(InstanceProfileName=profile)
    assert error_of(iam.get_instance_profile, InstanceProfileName=profile)["Code"] == "NoSuchEntity"
    iam.create_instance_profile(InstanceProfileName=profile)
    assert _profile(iam, profile)["InstanceProfileId"] != first_id


def test_a_failed_read_is_not_kept(server: RoleportServer, name: Any) -> None:
    iam = server.client("iam")
    assert error_of(iam.get_instance_profile, InstanceProfileName=name("later"))["Code"] == "NoSuchEntity"
    iam.create_instance_profile(InstanceProfileName=name("later"))
    assert _profile(iam, name("later"))["InstanceProfileName"] == name("later")
    for _ in range(2):  # an invalid request is refused every time, not just the first
        assert error_of(iam.get_instance_profile, InstanceProfileName="bad name")["Code"] == "ValidationError"


def test_a_kept_answer_still_needs_a_good_signature(server: RoleportServer, name: Any) -> None:
    iam = server.client("iam")
    iam.create_instance_profile(InstanceProfileName=name("signed"))
    _profile(iam, name("signed"))
    _profile(iam, name("signed"))
    forged = server.client("iam", secret_key="not-the-secret")
    error = error_of(forged.get_instance_profile, InstanceProfileName=name("signed"))
    assert error["Code"] == "SignatureDoesNotMatch" and error["Status"] == 403


def test_a_user_is_authorized_on_every_read(server: RoleportServer, name: Any) -> None:
    iam = server.client("iam")
    iam.create_instance_profile(InstanceProfileName=name("guarded"))
    user = user_with_key(server, iam, name("reader"), allow("iam:GetInstanceProfile"))
    as_user = client_as(server, "iam", user)
    assert _profile(as_user, name("guarded"))["InstanceProfileName"] == name("guarded")
    _profile(iam, name("guarded"))  # the root's answer is kept; the user's call must not be answered from it
    iam.delete_user_policy(UserName=name("reader"), PolicyName="test")  # user_with_key's policy
    assert error_of(as_user.get_instance_profile, InstanceProfileName=name("guarded"))["Code"] == "AccessDenied"


def test_a_write_by_another_server_on_the_same_database_is_seen_at_once(make_server: Any, tmp_path: Any) -> None:
    data_dir = tmp_path / "shared"
    reader, writer = make_server(data_dir=data_dir).client("iam"), make_server(data_dir=data_dir).client("iam")
    writer.create_instance_profile(InstanceProfileName="shared")
    for round_ in range(5):
        _profile(reader, "shared")  # kept by the reader
        writer.tag_instance_profile(InstanceProfileName="shared", Tags=[{"Key": "round", "Value": str(round_)}])
        assert _profile(reader, "shared")["Tags"] == [{"Key": "round", "Value": str(round_)}]
    listed = reader.list_instance_profiles()["InstanceProfiles"]
    writer.create_instance_profile(InstanceProfileName="shared-2")
    assert len(reader.list_instance_profiles()["InstanceProfiles"]) == len(listed) + 1


def test_a_reset_is_seen_at_once(tmp_path: Any) -> None:
    with RoleportServer(data_dir=tmp_path) as running:
        iam = running.client("iam")
        iam.create_instance_profile(InstanceProfileName="gone")
        _profile(iam, "gone")
        running.reset()
        assert error_of(iam.get_instance_profile, InstanceProfileName="gone")["Code"] == "NoSuchEntity"


@pytest.mark.parametrize("flag", ["--no-read-cache", "--read-cache"])
def test_the_cache_can_be_turned_off(make_server: Any, flag: str) -> None:
    iam = make_server(**{flag.removeprefix("--").replace("-", "_"): True}).client("iam")
    iam.create_instance_profile(InstanceProfileName="either")
    assert _profile(iam, "either") == _profile(iam, "either")
    iam.tag_instance_profile(InstanceProfileName="either", Tags=[{"Key": "k", "Value": "v"}])
    assert _profile(iam, "either")["Tags"] == [{"Key": "k", "Value": "v"}]
