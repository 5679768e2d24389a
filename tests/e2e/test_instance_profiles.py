"""Instance profiles through boto3 against the real server."""

from __future__ import annotations

from typing import Any

from tests.conftest import EC2_TRUST
from tests.e2e.helpers import error_of


def make_role(iam: Any, role_name: str) -> dict[str, Any]:
    return dict(iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=EC2_TRUST)["Role"])


def test_create_instance_profile_returns_aws_shaped_profile(iam: Any, name: Any) -> None:
    profile = iam.create_instance_profile(InstanceProfileName=name("web"), Path="/app/")["InstanceProfile"]
    assert profile["InstanceProfileName"] == name("web")
    assert profile["Path"] == "/app/"
    assert profile["Arn"] == f"arn:aws:iam::123456789012:instance-profile/app/{name('web')}"
    assert profile["InstanceProfileId"].startswith("AIPA") and len(profile["InstanceProfileId"]) == 21
    assert profile["Roles"] == []


def test_create_instance_profile_with_tags_keeps_them(iam: Any, name: Any) -> None:
    tags = [{"Key": "team", "Value": "blue"}, {"Key": "env", "Value": "dev"}]
    created = iam.create_instance_profile(InstanceProfileName=name("tagged"), Tags=tags)["InstanceProfile"]
    assert sorted(created["Tags"], key=lambda t: t["Key"]) == sorted(tags, key=lambda t: t["Key"])
    listed = iam.list_instance_profile_tags(InstanceProfileName=name("tagged"))
    assert listed["Tags"] == [{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "blue"}]
    assert listed["IsTruncated"] is False


def test_get_instance_profile_lists_tags_in_the_order_list_instance_profile_tags_does(iam: Any, name: Any) -> None:
    keys = ["b", "A", "_z", "Zeta", "\u00e9t\u00e9", "c"]  # case order differs from lower-cased order
    iam.create_instance_profile(InstanceProfileName=name("order"), Tags=[{"Key": k, "Value": k} for k in keys])
    got = [tag["Key"] for tag in iam.get_instance_profile(InstanceProfileName=name("order"))["InstanceProfile"]["Tags"]]
    listed = [tag["Key"] for tag in iam.list_instance_profile_tags(InstanceProfileName=name("order"))["Tags"]]
    # The store's collation decides the order (binary on SQLite, the database's on PostgreSQL); both calls agree.
    assert got == listed and sorted(got) == sorted(keys)


def test_duplicate_instance_profile_name_is_entity_already_exists_ignoring_case(iam: Any, name: Any) -> None:
    iam.create_instance_profile(InstanceProfileName=name("dup"))
    error = error_of(iam.create_instance_profile, InstanceProfileName=name("DUP"))
    assert error == {
        "Code": "EntityAlreadyExists",
        "Message": f"Instance Profile {name('DUP')} already exists.",
        "Status": 409,
    }


def test_get_missing_instance_profile_is_no_such_entity(iam: Any, name: Any) -> None:
    error = error_of(iam.get_instance_profile, InstanceProfileName=name("ghost"))
    assert error == {
        "Code": "NoSuchEntity",
        "Message": f"Instance Profile {name('ghost')} cannot be found.",
        "Status": 404,
    }


def test_get_instance_profile_shows_its_role_with_decoded_trust_policy(iam: Any, name: Any) -> None:
    make_role(iam, name("role"))
    iam.create_instance_profile(InstanceProfileName=name("prof"))
    iam.add_role_to_instance_profile(InstanceProfileName=name("prof"), RoleName=name("role"))
    profile = iam.get_instance_profile(InstanceProfileName=name("prof"))["InstanceProfile"]
    [role] = profile["Roles"]
    assert role["RoleName"] == name("role")
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}


def test_add_second_role_to_profile_is_limit_exceeded(iam: Any, name: Any) -> None:
    make_role(iam, name("first"))
    make_role(iam, name("second"))
    iam.create_instance_profile(InstanceProfileName=name("one"))
    iam.add_role_to_instance_profile(InstanceProfileName=name("one"), RoleName=name("first"))
    error = error_of(iam.add_role_to_instance_profile, InstanceProfileName=name("one"), RoleName=name("second"))
    assert error == {
        "Code": "LimitExceeded",
        "Message": "Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1",
        "Status": 409,
    }


def test_one_role_may_sit_in_many_profiles(iam: Any, name: Any) -> None:
    make_role(iam, name("shared"))
    for index in range(3):
        iam.create_instance_profile(InstanceProfileName=name(f"p{index}"))
        iam.add_role_to_instance_profile(InstanceProfileName=name(f"p{index}"), RoleName=name("shared"))
    listed = iam.list_instance_profiles_for_role(RoleName=name("shared"))["InstanceProfiles"]
    assert [p["InstanceProfileName"] for p in listed] == [name("p0"), name("p1"), name("p2")]
    assert all(p["Roles"][0]["RoleName"] == name("shared") for p in listed)


def test_add_role_to_missing_profile_or_missing_role_is_no_such_entity(iam: Any, name: Any) -> None:
    make_role(iam, name("r"))
    iam.create_instance_profile(InstanceProfileName=name("p"))
    assert (
        error_of(iam.add_role_to_instance_profile, InstanceProfileName=name("nope"), RoleName=name("r"))["Message"]
        == f"Instance Profile {name('nope')} cannot be found."
    )
    assert (
        error_of(iam.add_role_to_instance_profile, InstanceProfileName=name("p"), RoleName=name("nope"))["Message"]
        == f"The role with name {name('nope')} cannot be found."
    )


def test_remove_role_then_profile_is_empty(iam: Any, name: Any) -> None:
    make_role(iam, name("r"))
    iam.create_instance_profile(InstanceProfileName=name("p"))
    iam.add_role_to_instance_profile(InstanceProfileName=name("p"), RoleName=name("r"))
    iam.remove_role_from_instance_profile(InstanceProfileName=name("p"), RoleName=name("r"))
    assert iam.get_instance_profile(InstanceProfileName=name("p"))["InstanceProfile"]["Roles"] == []
    assert iam.list_instance_profiles_for_role(RoleName=name("r"))["InstanceProfiles"] == []


def test_remove_role_not_in_profile_is_no_such_entity(iam: Any, name: Any) -> None:
    make_role(iam, name("r"))
    iam.create_instance_profile(InstanceProfileName=name("p"))
    error = error_of(iam.remove_role_from_instance_profile, InstanceProfileName=name("p"), RoleName=name("r"))
    assert error["Code"] == "NoSuchEntity" and error["Status"] == 404


def test_delete_profile_holding_a_role_is_delete_conflict(iam: Any, name: Any) -> None:
    make_role(iam, name("r"))
    iam.create_instance_profile(InstanceProfileName=name("p"))
    iam.add_role_to_instance_profile(InstanceProfileName=name("p"), RoleName=name("r"))
    error = error_of(iam.delete_instance_profile, InstanceProfileName=name("p"))
    assert error == {
        "Code": "DeleteConflict",
        "Message": "Cannot delete entity, must remove roles from instance profile first.",
        "Status": 409,
    }
    iam.remove_role_from_instance_profile(InstanceProfileName=name("p"), RoleName=name("r"))
    iam.delete_instance_profile(InstanceProfileName=name("p"))
    assert error_of(iam.get_instance_profile, InstanceProfileName=name("p"))["Code"] == "NoSuchEntity"


def test_recreated_profile_gets_a_new_id_and_the_same_arn(iam: Any, name: Any) -> None:
    first = iam.create_instance_profile(InstanceProfileName=name("again"))["InstanceProfile"]
    iam.delete_instance_profile(InstanceProfileName=name("again"))
    second = iam.create_instance_profile(InstanceProfileName=name("again"))["InstanceProfile"]
    assert first["Arn"] == second["Arn"]
    assert first["InstanceProfileId"] != second["InstanceProfileId"]


def test_tag_untag_instance_profile(iam: Any, name: Any) -> None:
    iam.create_instance_profile(InstanceProfileName=name("t"))
    iam.tag_instance_profile(
        InstanceProfileName=name("t"), Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]
    )
    iam.tag_instance_profile(InstanceProfileName=name("t"), Tags=[{"Key": "A", "Value": "3"}])
    iam.untag_instance_profile(InstanceProfileName=name("t"), TagKeys=["b"])
    tags = iam.list_instance_profile_tags(InstanceProfileName=name("t"))["Tags"]
    assert tags == [{"Key": "A", "Value": "3"}]
    assert iam.get_instance_profile(InstanceProfileName=name("t"))["InstanceProfile"]["Tags"] == tags


def test_more_than_fifty_tags_is_refused_and_changes_nothing(iam: Any, name: Any) -> None:
    iam.create_instance_profile(
        InstanceProfileName=name("many"), Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(40)]
    )
    error = error_of(
        iam.tag_instance_profile,
        InstanceProfileName=name("many"),
        Tags=[{"Key": f"x{i}", "Value": "v"} for i in range(11)],
    )
    assert error["Code"] == "LimitExceeded" and error["Status"] == 409
    assert len(iam.list_instance_profile_tags(InstanceProfileName=name("many"))["Tags"]) == 40


def test_duplicate_tag_keys_in_one_request_are_invalid_input(iam: Any, name: Any) -> None:
    error = error_of(
        iam.create_instance_profile,
        InstanceProfileName=name("dupkeys"),
        Tags=[{"Key": "Env", "Value": "a"}, {"Key": "env", "Value": "b"}],
    )
    assert error["Code"] == "InvalidInput"
    assert error_of(iam.get_instance_profile, InstanceProfileName=name("dupkeys"))["Code"] == "NoSuchEntity"


def test_tagging_missing_profile_is_no_such_entity(iam: Any, name: Any) -> None:
    error = error_of(iam.tag_instance_profile, InstanceProfileName=name("gone"), Tags=[{"Key": "a", "Value": "b"}])
    assert error["Code"] == "NoSuchEntity"


def test_list_instance_profiles_pages_with_marker_and_path_prefix(iam: Any, name: Any) -> None:
    prefix = f"/{name('paging')}/"
    created = [name(f"pg{i:02d}") for i in range(7)]
    for profile in created:
        iam.create_instance_profile(InstanceProfileName=profile, Path=prefix)
    first = iam.list_instance_profiles(PathPrefix=prefix, MaxItems=3)
    assert first["IsTruncated"] is True and len(first["InstanceProfiles"]) == 3
    seen = [p["InstanceProfileName"] for p in first["InstanceProfiles"]]
    marker = first["Marker"]
    while marker:
        page = iam.list_instance_profiles(PathPrefix=prefix, MaxItems=3, Marker=marker)
        seen += [p["InstanceProfileName"] for p in page["InstanceProfiles"]]
        marker = page.get("Marker")
        assert page["IsTruncated"] is bool(marker)
    assert seen == created
    paginated = iam.get_paginator("list_instance_profiles").paginate(
        PathPrefix=prefix, PaginationConfig={"PageSize": 2}
    )
    assert [p["InstanceProfileName"] for page in paginated for p in page["InstanceProfiles"]] == created


def test_list_instance_profiles_omits_tags(iam: Any, name: Any) -> None:
    prefix = f"/{name('notags')}/"
    iam.create_instance_profile(InstanceProfileName=name("nt"), Path=prefix, Tags=[{"Key": "a", "Value": "b"}])
    [listed] = iam.list_instance_profiles(PathPrefix=prefix)["InstanceProfiles"]
    assert "Tags" not in listed


def test_list_instance_profiles_for_missing_role_is_no_such_entity(iam: Any, name: Any) -> None:
    assert error_of(iam.list_instance_profiles_for_role, RoleName=name("none"))["Code"] == "NoSuchEntity"


def test_bad_marker_is_invalid_input(iam: Any) -> None:
    assert error_of(iam.list_instance_profiles, Marker="not-a-marker")["Code"] == "InvalidInput"
