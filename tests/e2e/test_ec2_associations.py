"""IAM instance profile associations through boto3 against the real server: associate, describe, replace,
disassociate, their states, errors, and the one-active-association rule under concurrent callers."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from roleport.testing import RoleportServer
from tests.e2e.conftest import TRANSITION
from tests.e2e.helpers import error_of

AMI = "ami-0abcdef1234567890"


def make_profile(iam: Any, profile_name: str, path: str = "/") -> dict[str, Any]:
    return dict(iam.create_instance_profile(InstanceProfileName=profile_name, Path=path)["InstanceProfile"])


def launch(ec2: Any, count: int = 1, **kwargs: Any) -> list[str]:
    instances = ec2.run_instances(ImageId=AMI, MinCount=count, MaxCount=count, **kwargs)["Instances"]
    return [instance["InstanceId"] for instance in instances]


def instance_state(ec2: Any, instance_id: str) -> str:
    return str(ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"])


def running(clocked: RoleportServer) -> str:
    """An instance launched on the controlled-clock server and booted by moving its clock."""
    ec2 = clocked.client("ec2")
    [instance_id] = launch(ec2)
    clocked.advance(TRANSITION)
    assert instance_state(ec2, instance_id) == "running"
    return instance_id


def shown_profile(ec2: Any, instance_id: str) -> Any:
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return instance.get("IamInstanceProfile")


def associations_of(ec2: Any, *instance_ids: str, **kwargs: Any) -> list[dict[str, Any]]:
    filters = [{"Name": "instance-id", "Values": list(instance_ids)}]
    return list(
        ec2.describe_iam_instance_profile_associations(Filters=filters, **kwargs)["IamInstanceProfileAssociations"]
    )


def association_state(ec2: Any, association_id: str) -> str:
    found = ec2.describe_iam_instance_profile_associations(AssociationIds=[association_id])
    return str(found["IamInstanceProfileAssociations"][0]["State"])


# ---------------------------------------------------------------------------------------------- associate


def test_associate_returns_an_associating_association(clocked: RoleportServer, name: Any) -> None:
    ec2, iam = clocked.client("ec2"), clocked.client("iam")
    profile = make_profile(iam, name("web"))
    instance_id = running(clocked)
    result = ec2.associate_iam_instance_profile(InstanceId=instance_id, IamInstanceProfile={"Name": name("web")})
    association = result["IamInstanceProfileAssociation"]
    assert re.fullmatch(r"iip-assoc-[0-9a-f]{17}", association["AssociationId"])
    assert association["InstanceId"] == instance_id
    assert association["State"] == "associating"
    assert association["IamInstanceProfile"] == {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]}
    assert association["Timestamp"].year >= 2024
    assert association_state(ec2, association["AssociationId"]) == "associating"
    clocked.advance(TRANSITION)
    assert association_state(ec2, association["AssociationId"]) == "associated"
    assert shown_profile(ec2, instance_id) == association["IamInstanceProfile"]


def test_associate_by_arn(ec2_now: Any, iam_now: Any, name: Any) -> None:
    profile = make_profile(iam_now, name("by-arn"), path="/x/y/")
    [instance_id] = launch(ec2_now)
    result = ec2_now.associate_iam_instance_profile(InstanceId=instance_id, IamInstanceProfile={"Arn": profile["Arn"]})
    assert result["IamInstanceProfileAssociation"]["IamInstanceProfile"]["Arn"] == profile["Arn"]


def test_a_stopped_instance_can_be_associated(ec2_now: Any, iam_now: Any, name: Any) -> None:
    make_profile(iam_now, name("stopped"))
    [instance_id] = launch(ec2_now)
    ec2_now.stop_instances(InstanceIds=[instance_id])
    result = ec2_now.associate_iam_instance_profile(
        InstanceId=instance_id, IamInstanceProfile={"Name": name("stopped")}
    )
    assert result["IamInstanceProfileAssociation"]["State"] == "associating"
    assert shown_profile(ec2_now, instance_id)["Arn"].endswith(name("stopped"))


def test_a_pending_instance_cannot_be_associated(ec2_clocked: Any, iam_clocked: Any, name: Any) -> None:
    ec2, iam = ec2_clocked, iam_clocked
    make_profile(iam, name("early"))
    [instance_id] = launch(ec2)
    assert error_of(
        ec2.associate_iam_instance_profile, InstanceId=instance_id, IamInstanceProfile={"Name": name("early")}
    ) == {
        "Code": "IncorrectInstanceState",
        "Message": f"The instance '{instance_id}' is not in the 'running' or 'stopped' states.",
        "Status": 400,
    }


def test_a_terminated_instance_cannot_be_associated(ec2_now: Any, iam_now: Any, name: Any) -> None:
    make_profile(iam_now, name("late"))
    [instance_id] = launch(ec2_now)
    ec2_now.terminate_instances(InstanceIds=[instance_id])
    error = error_of(
        ec2_now.associate_iam_instance_profile, InstanceId=instance_id, IamInstanceProfile={"Name": name("late")}
    )
    assert error["Code"] == "IncorrectInstanceState"


def test_a_second_association_is_incorrect_state(ec2_now: Any, iam_now: Any, name: Any) -> None:
    make_profile(iam_now, name("one"))
    make_profile(iam_now, name("two"))
    [instance_id] = launch(ec2_now, IamInstanceProfile={"Name": name("one")})
    assert error_of(
        ec2_now.associate_iam_instance_profile, InstanceId=instance_id, IamInstanceProfile={"Name": name("two")}
    ) == {
        "Code": "IncorrectState",
        "Message": f"There is an existing association for instance {instance_id}",
        "Status": 400,
    }


def test_associating_an_unknown_profile_is_invalid_parameter_value(ec2_now: Any, name: Any) -> None:
    [instance_id] = launch(ec2_now)
    ghost = name("ghost")
    error = error_of(ec2_now.associate_iam_instance_profile, InstanceId=instance_id, IamInstanceProfile={"Name": ghost})
    assert error == {
        "Code": "InvalidParameterValue",
        "Message": f"Value ({ghost}) for parameter iamInstanceProfile.name is invalid. "
        "Invalid IAM Instance Profile name",
        "Status": 400,
    }
    arn = f"arn:aws:iam::123456789012:instance-profile/{ghost}"
    error = error_of(ec2_now.associate_iam_instance_profile, InstanceId=instance_id, IamInstanceProfile={"Arn": arn})
    assert error["Message"] == (
        f"Value ({arn}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN"
    )


def test_associating_an_unknown_instance_is_not_found(ec2: Any, iam: Any, name: Any) -> None:
    make_profile(iam, name("orphan"))
    spec = {"Name": name("orphan")}
    error = error_of(ec2.associate_iam_instance_profile, InstanceId="i-0123456789abcdef0", IamInstanceProfile=spec)
    assert error == {
        "Code": "InvalidInstanceID.NotFound",
        "Message": "The instance ID 'i-0123456789abcdef0' does not exist",
        "Status": 400,
    }
    error = error_of(ec2.associate_iam_instance_profile, InstanceId="i-nope", IamInstanceProfile=spec)
    assert (error["Code"], error["Message"]) == ("InvalidInstanceID.Malformed", 'Invalid id: "i-nope"')


def test_concurrent_associations_on_one_instance_have_one_winner(fast: RoleportServer, name: Any) -> None:
    make_profile(fast.client("iam"), name("race"))
    [instance_id] = launch(fast.client("ec2"))

    def associate(_: int) -> str:
        try:
            fast.client("ec2").associate_iam_instance_profile(
                InstanceId=instance_id, IamInstanceProfile={"Name": name("race")}
            )
            return "won"
        except ClientError as error:
            return f"{error.response['Error']['Code']}: {error.response['Error']['Message']}"

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(associate, range(10)))
    assert outcomes.count("won") == 1, outcomes
    lost = f"IncorrectState: There is an existing association for instance {instance_id}"
    assert outcomes.count(lost) == 9, outcomes
    assert len(associations_of(fast.client("ec2"), instance_id)) == 1


# ---------------------------------------------------------------------------------------------- describe


def test_describe_by_association_ids(ec2_now: Any, iam_now: Any, name: Any) -> None:
    make_profile(iam_now, name("ids"))
    instance_ids = launch(ec2_now, 2, IamInstanceProfile={"Name": name("ids")})
    made = associations_of(ec2_now, *instance_ids)
    wanted = [made[0]["AssociationId"]]
    found = ec2_now.describe_iam_instance_profile_associations(AssociationIds=wanted)["IamInstanceProfileAssociations"]
    assert found == [made[0]]
    assert "NextToken" not in ec2_now.describe_iam_instance_profile_associations(AssociationIds=wanted)


def test_unknown_association_ids_are_not_found(ec2_now: Any, iam_now: Any, name: Any) -> None:
    make_profile(iam_now, name("known"))
    [instance_id] = launch(ec2_now, IamInstanceProfile={"Name": name("known")})
    known = associations_of(ec2_now, instance_id)[0]["AssociationId"]
    ghost = "iip-assoc-0123456789abcdef0"
    assert error_of(ec2_now.describe_iam_instance_profile_associations, AssociationIds=[known, ghost]) == {
        "Code": "InvalidAssociationID.NotFound",
        "Message": f"The association ID '{ghost}' does not exist",
        "Status": 400,
    }
    two = [ghost, "iip-assoc-0123456789abcdef1"]
    error = error_of(ec2_now.describe_iam_instance_profile_associations, AssociationIds=two)
    assert error["Message"] == f"The association IDs '{two[0]}, {two[1]}' do not exist"


def test_association_ids_with_paging_is_invalid_parameter_combination(ec2: Any) -> None:
    ids = ["iip-assoc-0123456789abcdef0"]
    assert error_of(ec2.describe_iam_instance_profile_associations, AssociationIds=ids, MaxResults=5) == {
        "Code": "InvalidParameterCombination",
        "Message": "The parameter associationIds cannot be used with the parameter maxResults",
        "Status": 400,
    }


def test_describe_filters_by_instance_and_state(clocked: RoleportServer, name: Any) -> None:
    ec2, iam = clocked.client("ec2"), clocked.client("iam")
    make_profile(iam, name("flt"))
    first, second = launch(ec2, 2, IamInstanceProfile={"Name": name("flt")})
    by_state = [{"Name": "instance-id", "Values": [first, second]}, {"Name": "state", "Values": ["associating"]}]
    found = ec2.describe_iam_instance_profile_associations(Filters=by_state)["IamInstanceProfileAssociations"]
    assert {a["InstanceId"] for a in found} == {first, second}
    assert [a["InstanceId"] for a in associations_of(ec2, second)] == [second]
    by_state[1]["Values"] = ["associated"]
    assert ec2.describe_iam_instance_profile_associations(Filters=by_state)["IamInstanceProfileAssociations"] == []
    clocked.advance(TRANSITION)
    found = ec2.describe_iam_instance_profile_associations(Filters=by_state)["IamInstanceProfileAssociations"]
    assert {a["InstanceId"] for a in found} == {first, second}
    by_state[1]["Values"] = ["*dissoc*", "associat?ng"]
    assert ec2.describe_iam_instance_profile_associations(Filters=by_state)["IamInstanceProfileAssociations"] == []


def test_unknown_association_filter_is_invalid_parameter_value(ec2: Any) -> None:
    filters = [{"Name": "association-id", "Values": ["x"]}]
    assert error_of(ec2.describe_iam_instance_profile_associations, Filters=filters) == {
        "Code": "InvalidParameterValue",
        "Message": "The filter 'association-id' is invalid",
        "Status": 400,
    }


def test_describe_pages_through_every_association_once(ec2_now: Any, iam_now: Any, name: Any) -> None:
    make_profile(iam_now, name("paged"))
    instance_ids = launch(ec2_now, 12, IamInstanceProfile={"Name": name("paged")})
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = ec2_now.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": instance_ids}], MaxResults=5, **kwargs
        )
        assert len(page["IamInstanceProfileAssociations"]) <= 5
        seen += [a["InstanceId"] for a in page["IamInstanceProfileAssociations"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3 and sorted(seen) == sorted(instance_ids)
    paginator = ec2_now.get_paginator("describe_iam_instance_profile_associations")
    pages_seen = list(
        paginator.paginate(Filters=[{"Name": "instance-id", "Values": instance_ids}], PaginationConfig={"PageSize": 5})
    )
    assert sum(len(p["IamInstanceProfileAssociations"]) for p in pages_seen) == 12


def test_bad_association_token_is_invalid_parameter_value(ec2: Any) -> None:
    error = error_of(ec2.describe_iam_instance_profile_associations, NextToken="bogus")
    assert (error["Code"], error["Status"]) == ("InvalidParameterValue", 400)


# ---------------------------------------------------------------------------------------------- replace


def test_replace_makes_a_new_association_and_ends_the_old(clocked: RoleportServer, name: Any) -> None:
    ec2, iam = clocked.client("ec2"), clocked.client("iam")
    make_profile(iam, name("old"))
    new = make_profile(iam, name("new"))
    instance_id = running(clocked)
    old = ec2.associate_iam_instance_profile(InstanceId=instance_id, IamInstanceProfile={"Name": name("old")})
    old_id = old["IamInstanceProfileAssociation"]["AssociationId"]
    result = ec2.replace_iam_instance_profile_association(
        AssociationId=old_id, IamInstanceProfile={"Name": name("new")}
    )
    replacement = result["IamInstanceProfileAssociation"]
    assert replacement["AssociationId"] != old_id
    assert re.fullmatch(r"iip-assoc-[0-9a-f]{17}", replacement["AssociationId"])
    assert (replacement["InstanceId"], replacement["State"]) == (instance_id, "associating")
    assert replacement["IamInstanceProfile"] == {"Arn": new["Arn"], "Id": new["InstanceProfileId"]}
    assert association_state(ec2, old_id) == "disassociating"
    assert shown_profile(ec2, instance_id) == replacement["IamInstanceProfile"]
    assert {a["AssociationId"] for a in associations_of(ec2, instance_id)} == {old_id, replacement["AssociationId"]}
    clocked.advance(TRANSITION)
    assert association_state(ec2, replacement["AssociationId"]) == "associated"
    assert [a["AssociationId"] for a in associations_of(ec2, instance_id)] == [replacement["AssociationId"]]


def test_replacing_a_replaced_association_is_incorrect_state(clocked: RoleportServer, name: Any) -> None:
    ec2, iam = clocked.client("ec2"), clocked.client("iam")
    make_profile(iam, name("first"))
    make_profile(iam, name("second"))
    instance_id = running(clocked)
    old = ec2.associate_iam_instance_profile(InstanceId=instance_id, IamInstanceProfile={"Name": name("first")})
    old_id = old["IamInstanceProfileAssociation"]["AssociationId"]
    ec2.replace_iam_instance_profile_association(AssociationId=old_id, IamInstanceProfile={"Name": name("second")})
    # Still disassociating: no longer the active association, as AWS words it (aws/aws-cli#5251).
    error = error_of(
        ec2.replace_iam_instance_profile_association, AssociationId=old_id, IamInstanceProfile={"Name": name("first")}
    )
    assert error == {
        "Code": "IncorrectState",
        "Message": f"The association {old_id} is not the active association",
        "Status": 400,
    }


def test_replace_needs_a_running_instance(ec2_now: Any, iam_now: Any, name: Any) -> None:
    make_profile(iam_now, name("a"))
    make_profile(iam_now, name("b"))
    [instance_id] = launch(ec2_now, IamInstanceProfile={"Name": name("a")})
    ec2_now.stop_instances(InstanceIds=[instance_id])
    association_id = associations_of(ec2_now, instance_id)[0]["AssociationId"]
    error = error_of(
        ec2_now.replace_iam_instance_profile_association,
        AssociationId=association_id,
        IamInstanceProfile={"Name": name("b")},
    )
    assert error == {
        "Code": "IncorrectInstanceState",
        "Message": f"The instance '{instance_id}' is not in the 'running' state.",
        "Status": 400,
    }
    assert shown_profile(ec2_now, instance_id)["Arn"].endswith(f"/{name('a')}")


def test_replace_unknown_or_malformed_association(ec2: Any, iam: Any, name: Any) -> None:
    make_profile(iam, name("r"))
    spec = {"Name": name("r")}
    ghost = "iip-assoc-0123456789abcdef0"
    assert error_of(ec2.replace_iam_instance_profile_association, AssociationId=ghost, IamInstanceProfile=spec) == {
        "Code": "InvalidAssociationID.NotFound",
        "Message": f"The association ID '{ghost}' does not exist",
        "Status": 400,
    }
    error = error_of(
        ec2.replace_iam_instance_profile_association, AssociationId="i-0123456789abcdef0", IamInstanceProfile=spec
    )
    assert error == {"Code": "InvalidParameterValue", "Message": "Invalid value for associationId.", "Status": 400}


def test_replace_with_an_unknown_profile_changes_nothing(ec2_now: Any, iam_now: Any, name: Any) -> None:
    make_profile(iam_now, name("keep"))
    [instance_id] = launch(ec2_now, IamInstanceProfile={"Name": name("keep")})
    association_id = associations_of(ec2_now, instance_id)[0]["AssociationId"]
    error = error_of(
        ec2_now.replace_iam_instance_profile_association,
        AssociationId=association_id,
        IamInstanceProfile={"Name": name("ghost")},
    )
    assert error["Code"] == "InvalidParameterValue"
    assert association_state(ec2_now, association_id) == "associated"


# ---------------------------------------------------------------------------------------------- disassociate


def test_disassociate_removes_the_profile(ec2_now: Any, iam_now: Any, name: Any) -> None:
    profile = make_profile(iam_now, name("bye"))
    [instance_id] = launch(ec2_now, IamInstanceProfile={"Name": name("bye")})
    association_id = associations_of(ec2_now, instance_id)[0]["AssociationId"]
    result = ec2_now.disassociate_iam_instance_profile(AssociationId=association_id)
    assert result["IamInstanceProfileAssociation"] == {
        "AssociationId": association_id,
        "InstanceId": instance_id,
        "IamInstanceProfile": {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]},
        "State": "disassociating",
    }
    assert shown_profile(ec2_now, instance_id) is None
    assert associations_of(ec2_now, instance_id) == []  # disassociated associations are not listed
    error = error_of(ec2_now.describe_iam_instance_profile_associations, AssociationIds=[association_id])
    assert error["Code"] == "InvalidAssociationID.NotFound"
    again = ec2_now.associate_iam_instance_profile(InstanceId=instance_id, IamInstanceProfile={"Name": name("bye")})
    assert again["IamInstanceProfileAssociation"]["AssociationId"] != association_id


def test_disassociating_passes_through_disassociating(clocked: RoleportServer, name: Any) -> None:
    ec2, iam = clocked.client("ec2"), clocked.client("iam")
    make_profile(iam, name("paced"))
    instance_id = running(clocked)
    made = ec2.associate_iam_instance_profile(InstanceId=instance_id, IamInstanceProfile={"Name": name("paced")})
    association_id = made["IamInstanceProfileAssociation"]["AssociationId"]
    ec2.disassociate_iam_instance_profile(AssociationId=association_id)
    assert association_state(ec2, association_id) == "disassociating"
    assert error_of(ec2.disassociate_iam_instance_profile, AssociationId=association_id) == {
        "Code": "IncorrectState",
        "Message": f"The association '{association_id}' is not in a valid state for this operation.",
        "Status": 400,
    }
    assert [a["State"] for a in associations_of(ec2, instance_id)] == ["disassociating"]
    clocked.advance(TRANSITION)
    assert associations_of(ec2, instance_id) == []


def test_disassociate_unknown_association_is_not_found(ec2: Any) -> None:
    error = error_of(ec2.disassociate_iam_instance_profile, AssociationId="iip-assoc-0123456789abcdef0")
    assert (error["Code"], error["Status"]) == ("InvalidAssociationID.NotFound", 400)


def test_terminating_ends_the_association(ec2_now: Any, iam_now: Any, name: Any) -> None:
    make_profile(iam_now, name("term"))
    [instance_id] = launch(ec2_now, IamInstanceProfile={"Name": name("term")})
    ec2_now.terminate_instances(InstanceIds=[instance_id])
    assert associations_of(ec2_now, instance_id) == []
    assert shown_profile(ec2_now, instance_id) is None


# ---------------------------------------------------------------------------------------------- deleted profiles


def test_a_profile_in_use_can_be_deleted_and_instances_keep_showing_it(ec2_now: Any, iam_now: Any, name: Any) -> None:
    profile = make_profile(iam_now, name("doomed"))
    [instance_id] = launch(ec2_now, IamInstanceProfile={"Name": name("doomed")})
    iam_now.delete_instance_profile(InstanceProfileName=name("doomed"))
    expected = {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]}
    assert shown_profile(ec2_now, instance_id) == expected
    assert associations_of(ec2_now, instance_id)[0]["IamInstanceProfile"] == expected
    error = error_of(launch, ec2_now, IamInstanceProfile={"Name": name("doomed")})
    assert error["Code"] == "InvalidParameterValue"
    association_id = associations_of(ec2_now, instance_id)[0]["AssociationId"]
    ec2_now.disassociate_iam_instance_profile(AssociationId=association_id)
    assert shown_profile(ec2_now, instance_id) is None


# ---------------------------------------------------------------------------------------------- persistence


def test_associations_survive_a_restart(
    make_server: Callable[..., RoleportServer], backend: str | None, name: Any
) -> None:
    first = make_server(database_url=backend, state_transition_seconds=0)
    make_profile(first.client("iam"), name("a"))
    make_profile(first.client("iam"), name("b"))
    ec2 = first.client("ec2")
    [instance_id] = launch(ec2, IamInstanceProfile={"Name": name("a")})
    old = associations_of(ec2, instance_id)[0]["AssociationId"]
    ec2.replace_iam_instance_profile_association(AssociationId=old, IamInstanceProfile={"Name": name("b")})
    before = associations_of(ec2, instance_id)
    first.stop()
    first.start()
    ec2 = first.client("ec2")
    assert associations_of(ec2, instance_id) == before
    assert shown_profile(ec2, instance_id)["Arn"].endswith(f"/{name('b')}")
    error = error_of(ec2.associate_iam_instance_profile, InstanceId=instance_id, IamInstanceProfile={"Name": name("a")})
    assert error["Code"] == "IncorrectState"
