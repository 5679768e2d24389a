"""EC2 instances through boto3 against the real server: launch, describe, filters, paging, state changes, errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from roleport.testing import RoleportServer
from tests.e2e.conftest import TRANSITION
from tests.e2e.helpers import error_of

AMI = "ami-0abcdef1234567890"


def launch(ec2: Any, count: int = 1, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("ImageId", AMI)
    return dict(ec2.run_instances(MinCount=count, MaxCount=count, **kwargs))


def tagged(tag: str) -> dict[str, Any]:
    return {"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "suite", "Value": tag}]}]}


def described(ec2: Any, *instance_ids: str) -> list[dict[str, Any]]:
    reservations = ec2.describe_instances(InstanceIds=list(instance_ids))["Reservations"]
    return [instance for reservation in reservations for instance in reservation["Instances"]]


def state_of(ec2: Any, instance_id: str) -> str:
    return str(described(ec2, instance_id)[0]["State"]["Name"])


def polls_of(ec2: Any, on_poll: Callable[[list[str]], object] = lambda states: None) -> list[list[str]]:
    """The instance states each later DescribeInstances answer shows, as a waiter's polls see them; `on_poll` runs
    after each answer is read, with its states, before the waiter looks at it."""
    seen: list[list[str]] = []

    def record(parsed: dict[str, Any], **_: Any) -> None:
        states = [i["State"]["Name"] for r in parsed.get("Reservations", []) for i in r["Instances"]]
        seen.append(states)
        on_poll(states)

    ec2.meta.events.register("after-call.ec2.DescribeInstances", record)
    return seen


def ids_matching(ec2: Any, *filters: dict[str, Any]) -> set[str]:
    reservations = ec2.describe_instances(Filters=list(filters))["Reservations"]
    return {instance["InstanceId"] for reservation in reservations for instance in reservation["Instances"]}


# ---------------------------------------------------------------------------------------------- RunInstances


def test_run_instances_returns_a_pending_reservation_shaped_like_aws(ec2: Any) -> None:
    reservation = launch(ec2, InstanceType="t3.micro")
    assert re.fullmatch(r"r-[0-9a-f]{17}", reservation["ReservationId"])
    assert (reservation["OwnerId"], reservation["Groups"]) == ("123456789012", [])
    [instance] = reservation["Instances"]
    assert re.fullmatch(r"i-[0-9a-f]{17}", instance["InstanceId"])
    assert instance["State"] == {"Code": 0, "Name": "pending"}
    assert (instance["ImageId"], instance["InstanceType"], instance["AmiLaunchIndex"]) == (AMI, "t3.micro", 0)
    assert re.fullmatch(r"172\.31\.\d+\.\d+", instance["PrivateIpAddress"])
    assert instance["PrivateDnsName"] == "ip-" + instance["PrivateIpAddress"].replace(".", "-") + ".ec2.internal"
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1a"
    assert (instance["Architecture"], instance["RootDeviceType"]) == ("x86_64", "ebs")
    assert instance["Monitoring"] == {"State": "disabled"}
    assert instance["LaunchTime"].year >= 2024
    assert instance["MetadataOptions"] == {
        "State": "pending",
        "HttpTokens": "optional",
        "HttpPutResponseHopLimit": 1,
        "HttpEndpoint": "enabled",
        "HttpProtocolIpv6": "disabled",
        "InstanceMetadataTags": "disabled",
    }
    assert "IamInstanceProfile" not in instance


def test_default_instance_type_is_m1_small(ec2: Any) -> None:
    assert launch(ec2)["Instances"][0]["InstanceType"] == "m1.small"


def test_max_count_instances_share_one_reservation(ec2: Any, name: Any) -> None:
    reservation = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=3, **tagged(name("three")))
    assert [i["AmiLaunchIndex"] for i in reservation["Instances"]] == [0, 1, 2]
    [listed] = ec2.describe_instances(Filters=[{"Name": "tag:suite", "Values": [name("three")]}])["Reservations"]
    assert listed["ReservationId"] == reservation["ReservationId"]
    assert [i["InstanceId"] for i in listed["Instances"]] == [i["InstanceId"] for i in reservation["Instances"]]


def test_image_id_of_eight_hex_digits_is_well_formed(ec2: Any) -> None:
    assert launch(ec2, ImageId="ami-12345678")["Instances"][0]["ImageId"] == "ami-12345678"


@pytest.mark.parametrize("image", ["ami-xyz", "ami-0abcdef123456789", "image-1"])
def test_malformed_image_id_is_invalid_ami_id_malformed(ec2: Any, image: str) -> None:
    assert error_of(launch, ec2, ImageId=image) == {
        "Code": "InvalidAMIID.Malformed",
        "Message": f'Invalid id: "{image}" (expecting "ami-...")',
        "Status": 400,
    }


def test_min_count_above_max_count_is_invalid_parameter_value(ec2: Any) -> None:
    assert error_of(ec2.run_instances, ImageId=AMI, MinCount=3, MaxCount=2) == {
        "Code": "InvalidParameterValue",
        "Message": "Maximum instance count must not be smaller than minimum instance count",
        "Status": 400,
    }
    error = error_of(ec2.run_instances, ImageId=AMI, MinCount=1, MaxCount=0)
    assert error["Message"] == "Maximum instance count must be greater than zero"


def test_unknown_instance_type_is_invalid_parameter_value(ec2: Any) -> None:
    error = error_of(launch, ec2, InstanceType="t9.huge")
    assert (error["Code"], error["Status"]) == ("InvalidParameterValue", 400)


def test_unknown_profile_name_is_invalid_parameter_value(ec2: Any, name: Any) -> None:
    ghost = name("ghost")
    assert error_of(launch, ec2, IamInstanceProfile={"Name": ghost}) == {
        "Code": "InvalidParameterValue",
        "Message": f"Value ({ghost}) for parameter iamInstanceProfile.name is invalid. "
        "Invalid IAM Instance Profile name",
        "Status": 400,
    }


def test_unknown_profile_arn_is_invalid_parameter_value(ec2: Any, iam: Any, name: Any) -> None:
    iam.create_instance_profile(InstanceProfileName=name("real"), Path="/app/")
    for arn in (
        f"arn:aws:iam::123456789012:instance-profile/{name('ghost')}",
        f"arn:aws:iam::123456789012:instance-profile/{name('real')}",  # right name, wrong path
        f"arn:aws:iam::999999999999:instance-profile/app/{name('real')}",  # another account's
    ):
        assert error_of(launch, ec2, IamInstanceProfile={"Arn": arn}) == {
            "Code": "InvalidParameterValue",
            "Message": f"Value ({arn}) for parameter iamInstanceProfile.arn is invalid. "
            "Invalid IAM Instance Profile ARN",
            "Status": 400,
        }


def test_launch_with_profile_by_name_shows_it_and_associates(ec2_now: Any, iam_now: Any, name: Any) -> None:
    profile = iam_now.create_instance_profile(InstanceProfileName=name("web"))["InstanceProfile"]
    [instance] = launch(ec2_now, IamInstanceProfile={"Name": name("web")})["Instances"]
    assert instance["IamInstanceProfile"] == {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]}
    assert described(ec2_now, instance["InstanceId"])[0]["IamInstanceProfile"] == instance["IamInstanceProfile"]
    filters = [{"Name": "instance-id", "Values": [instance["InstanceId"]]}]
    found = ec2_now.describe_iam_instance_profile_associations(Filters=filters)
    [association] = found["IamInstanceProfileAssociations"]
    assert association["State"] == "associated"
    assert association["IamInstanceProfile"] == instance["IamInstanceProfile"]


def test_launch_with_profile_by_arn_with_a_path(ec2: Any, iam: Any, name: Any) -> None:
    profile = iam.create_instance_profile(InstanceProfileName=name("pathy"), Path="/team/a/")["InstanceProfile"]
    [instance] = launch(ec2, IamInstanceProfile={"Arn": profile["Arn"]})["Instances"]
    assert instance["IamInstanceProfile"] == {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]}


def test_launch_association_is_associating_then_associated(clocked: RoleportServer, name: Any) -> None:
    clocked.client("iam").create_instance_profile(InstanceProfileName=name("paced"))
    ec2 = clocked.client("ec2")
    [instance] = launch(ec2, IamInstanceProfile={"Name": name("paced")})["Instances"]
    filters = [{"Name": "instance-id", "Values": [instance["InstanceId"]]}]

    def association_state() -> str:
        found = ec2.describe_iam_instance_profile_associations(Filters=filters)["IamInstanceProfileAssociations"]
        return str(found[0]["State"])

    assert association_state() == "associating"
    clocked.advance(TRANSITION)
    assert association_state() == "associated"


def test_metadata_options_at_launch(ec2_now: Any) -> None:
    options = {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "InstanceMetadataTags": "enabled"}
    [instance] = launch(ec2_now, MetadataOptions=options)["Instances"]
    assert instance["MetadataOptions"]["State"] == "pending"
    shown = described(ec2_now, instance["InstanceId"])[0]["MetadataOptions"]
    assert shown == {
        "State": "applied",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 2,
        "HttpEndpoint": "enabled",
        "HttpProtocolIpv6": "disabled",
        "InstanceMetadataTags": "enabled",
    }


def test_bad_metadata_options_are_invalid_parameter_value(ec2: Any) -> None:
    error = error_of(launch, ec2, MetadataOptions={"HttpPutResponseHopLimit": 65})
    assert (error["Code"], error["Status"]) == ("InvalidParameterValue", 400)
    assert error_of(launch, ec2, MetadataOptions={"HttpTokens": "sometimes"}) == {
        "Code": "InvalidParameterValue",
        "Message": "A value of 'sometimes' is not valid for HttpTokens. Specify either 'optional' or 'required' and "
        "try again.",
        "Status": 400,
    }


def test_tag_specifications_tag_the_instance(ec2: Any, name: Any) -> None:
    tags = [{"Key": "Name", "Value": name("box")}, {"Key": "team", "Value": "blue"}]
    [instance] = launch(ec2, TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"]
    assert sorted(instance["Tags"], key=lambda t: t["Key"]) == tags
    assert sorted(described(ec2, instance["InstanceId"])[0]["Tags"], key=lambda t: t["Key"]) == tags


def test_client_token_returns_the_same_reservation_and_launches_nothing(ec2: Any, name: Any) -> None:
    token = name("token")
    first = launch(ec2, ClientToken=token, **tagged(name("idem")))
    again = launch(ec2, ClientToken=token, **tagged(name("idem")))
    assert again["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in again["Instances"]] == [i["InstanceId"] for i in first["Instances"]]
    assert ids_matching(ec2, {"Name": "tag:suite", "Values": [name("idem")]}) == {first["Instances"][0]["InstanceId"]}
    assert first["Instances"][0]["ClientToken"] == token


def test_client_token_with_other_arguments_is_idempotent_parameter_mismatch(ec2: Any, name: Any) -> None:
    launch(ec2, ClientToken=name("token"), InstanceType="t3.micro")
    assert error_of(launch, ec2, ClientToken=name("token"), InstanceType="t3.small") == {
        "Code": "IdempotentParameterMismatch",
        "Message": "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
        "Status": 400,
    }


def test_concurrent_launches_with_one_client_token_make_one_reservation(ec2: Any, name: Any) -> None:
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(lambda _: launch(ec2, ClientToken=name("race"), **tagged(name("race"))), range(5)))
    assert len({result["ReservationId"] for result in results}) == 1
    assert len(ids_matching(ec2, {"Name": "tag:suite", "Values": [name("race")]})) == 1


def test_dry_run_launches_nothing(ec2: Any, name: Any) -> None:
    assert error_of(launch, ec2, DryRun=True, **tagged(name("dry"))) == {
        "Code": "DryRunOperation",
        "Message": "Request would have succeeded, but DryRun flag is set.",
        "Status": 412,
    }
    assert ids_matching(ec2, {"Name": "tag:suite", "Values": [name("dry")]}) == set()


# ---------------------------------------------------------------------------------------------- DescribeInstances


def test_unknown_instance_is_not_found(ec2: Any) -> None:
    assert error_of(ec2.describe_instances, InstanceIds=["i-0123456789abcdef0"]) == {
        "Code": "InvalidInstanceID.NotFound",
        "Message": "The instance ID 'i-0123456789abcdef0' does not exist",
        "Status": 400,
    }


def test_several_unknown_instances_are_named_together(ec2: Any) -> None:
    real = launch(ec2)["Instances"][0]["InstanceId"]
    ghosts = ["i-0123456789abcdef0", "i-0123456789abcdef1"]
    error = error_of(ec2.describe_instances, InstanceIds=[ghosts[0], real, ghosts[1]])
    assert error["Message"] == "The instance IDs 'i-0123456789abcdef0, i-0123456789abcdef1' do not exist"


def test_malformed_instance_id_is_malformed(ec2: Any) -> None:
    assert error_of(ec2.describe_instances, InstanceIds=["i-xyz"]) == {
        "Code": "InvalidInstanceID.Malformed",
        "Message": 'Invalid id: "i-xyz"',
        "Status": 400,
    }


def test_max_results_with_instance_ids_is_invalid_parameter_combination(ec2: Any) -> None:
    real = launch(ec2)["Instances"][0]["InstanceId"]
    assert error_of(ec2.describe_instances, InstanceIds=[real], MaxResults=5) == {
        "Code": "InvalidParameterCombination",
        "Message": "The parameter instancesSet cannot be used with the parameter maxResults",
        "Status": 400,
    }


def test_max_results_below_five_is_invalid_parameter_value(ec2: Any) -> None:
    assert error_of(ec2.describe_instances, MaxResults=4) == {
        "Code": "InvalidParameterValue",
        "Message": "Value ( 4 ) for parameter maxResults is invalid. Expecting a value greater than 5.",
        "Status": 400,
    }
    assert error_of(ec2.describe_instances, MaxResults=1001)["Code"] == "InvalidParameterValue"


def test_bad_next_token_is_invalid_parameter_value(ec2: Any) -> None:
    assert error_of(ec2.describe_instances, NextToken="nonsense") == {
        "Code": "InvalidParameterValue",
        "Message": "Value ( nonsense ) for parameter NextToken is invalid. The token is invalid.",
        "Status": 400,
    }


def test_describe_pages_through_every_instance_once(ec2: Any, name: Any) -> None:
    launched = {i["InstanceId"] for i in launch(ec2, 12, **tagged(name("paged")))["Instances"]}
    filters = [{"Name": "tag:suite", "Values": [name("paged")]}]
    seen: list[str] = []
    pages = 0
    token: str | None = None
    while True:
        kwargs = {"NextToken": token} if token else {}
        page = ec2.describe_instances(Filters=filters, MaxResults=5, **kwargs)
        found = [i["InstanceId"] for r in page["Reservations"] for i in r["Instances"]]
        assert len(found) <= 5
        seen += found
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3 and len(seen) == 12 and set(seen) == launched


def test_paginator_collects_every_page(ec2: Any, name: Any) -> None:
    launched = {i["InstanceId"] for i in launch(ec2, 7, **tagged(name("pager")))["Instances"]}
    paginator = ec2.get_paginator("describe_instances")
    pages = list(
        paginator.paginate(Filters=[{"Name": "tag:suite", "Values": [name("pager")]}], PaginationConfig={"PageSize": 5})
    )
    assert len(pages) == 2
    assert {i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]} == launched


def test_zero_delay_shows_running_next_read_but_pending_in_the_response(ec2_now: Any) -> None:
    [instance] = launch(ec2_now)["Instances"]
    assert instance["State"]["Name"] == "pending"
    assert described(ec2_now, instance["InstanceId"])[0]["State"] == {"Code": 16, "Name": "running"}


# ---------------------------------------------------------------------------------------------- filters


@pytest.fixture
def fleet(ec2_now: Any, iam_now: Any, name: Any) -> dict[str, Any]:
    """Three instances of one suite: a t3.micro with a profile, a stopped t3.small, a terminated one."""
    profile = iam_now.create_instance_profile(InstanceProfileName=name("flt"))["InstanceProfile"]
    suite = tagged(name("fleet"))
    web = launch(ec2_now, InstanceType="t3.micro", IamInstanceProfile={"Name": name("flt")}, **suite)
    stopped = launch(ec2_now, InstanceType="t3.small", ImageId="ami-12345678", **suite)
    gone = launch(ec2_now, InstanceType="t3.small", **suite)
    ec2_now.stop_instances(InstanceIds=[stopped["Instances"][0]["InstanceId"]])
    ec2_now.terminate_instances(InstanceIds=[gone["Instances"][0]["InstanceId"]])
    return {
        "profile": profile,
        "web": web["Instances"][0],
        "web_reservation": web["ReservationId"],
        "stopped": stopped["Instances"][0]["InstanceId"],
        "gone": gone["Instances"][0]["InstanceId"],
        "suite": {"Name": "tag:suite", "Values": [name("fleet")]},
    }


def test_filters_select_by_each_attribute(ec2_now: Any, fleet: dict[str, Any]) -> None:
    web, stopped, gone = fleet["web"]["InstanceId"], fleet["stopped"], fleet["gone"]

    def by(filter_name: str, *values: str) -> set[str]:
        return ids_matching(ec2_now, fleet["suite"], {"Name": filter_name, "Values": list(values)})

    assert by("instance-id", web, gone) == {web, gone}
    assert by("instance-state-name", "stopped") == {stopped}
    assert by("instance-state-name", "running", "terminated") == {web, gone}
    assert by("instance-state-code", "80") == {stopped}
    assert by("instance-state-code", "16", "48") == {web, gone}
    assert by("instance-type", "t3.small") == {stopped, gone}
    assert by("image-id", "ami-12345678") == {stopped}
    assert by("iam-instance-profile.arn", fleet["profile"]["Arn"]) == {web}
    assert by("iam-instance-profile.id", fleet["profile"]["InstanceProfileId"]) == {web}
    assert by("availability-zone", "us-east-1a") == {web, stopped, gone}
    assert by("availability-zone", "us-east-1b") == set()
    assert by("reservation-id", fleet["web_reservation"]) == {web}
    assert by("tag-key", "suite") == {web, stopped, gone}
    assert by("tag-value", fleet["suite"]["Values"][0]) == {web, stopped, gone}


def test_filter_values_take_wildcards(ec2_now: Any, fleet: dict[str, Any]) -> None:
    web, stopped, gone = fleet["web"]["InstanceId"], fleet["stopped"], fleet["gone"]

    def by(filter_name: str, *values: str) -> set[str]:
        return ids_matching(ec2_now, fleet["suite"], {"Name": filter_name, "Values": list(values)})

    assert by("instance-state-name", "stop*") == {stopped}
    assert by("instance-type", "t3.?icro") == {web}
    assert by("instance-type", "T3.*") == set()  # filter values are case-sensitive
    assert by("tag:suite", fleet["suite"]["Values"][0][:-3] + "*") == {web, stopped, gone}
    assert by("tag-key", "sui?e") == {web, stopped, gone}


def test_filters_combine_with_and_and_values_with_or(ec2_now: Any, fleet: dict[str, Any]) -> None:
    found = ids_matching(
        ec2_now,
        fleet["suite"],
        {"Name": "instance-type", "Values": ["t3.small", "t3.micro"]},
        {"Name": "instance-state-name", "Values": ["running", "stopped"]},
    )
    assert found == {fleet["web"]["InstanceId"], fleet["stopped"]}


def test_unknown_filter_is_invalid_parameter_value(ec2: Any) -> None:
    assert error_of(ec2.describe_instances, Filters=[{"Name": "public-ip", "Values": ["1.2.3.4"]}]) == {
        "Code": "InvalidParameterValue",
        "Message": "The filter 'public-ip' is invalid",
        "Status": 400,
    }


def test_aws_filter_on_an_attribute_roleport_lacks_matches_nothing(ec2_now: Any, fleet: dict[str, Any]) -> None:
    assert ids_matching(ec2_now, fleet["suite"], {"Name": "vpc-id", "Values": ["vpc-12345678"]}) == set()


# ---------------------------------------------------------------------------------------------- state changes


def test_stop_start_terminate_pass_through_their_passing_states(ec2_now: Any) -> None:
    instance_id = launch(ec2_now)["Instances"][0]["InstanceId"]
    [stop] = ec2_now.stop_instances(InstanceIds=[instance_id])["StoppingInstances"]
    assert stop == {
        "InstanceId": instance_id,
        "CurrentState": {"Code": 64, "Name": "stopping"},
        "PreviousState": {"Code": 16, "Name": "running"},
    }
    stopped = described(ec2_now, instance_id)[0]
    assert stopped["State"]["Name"] == "stopped"
    assert stopped["StateReason"]["Code"] == "Client.UserInitiatedShutdown"
    assert stopped["StateTransitionReason"].startswith("User initiated (")
    [start] = ec2_now.start_instances(InstanceIds=[instance_id])["StartingInstances"]
    assert (start["PreviousState"]["Name"], start["CurrentState"]["Name"]) == ("stopped", "pending")
    restarted = described(ec2_now, instance_id)[0]
    assert restarted["State"]["Name"] == "running" and "StateReason" not in restarted
    assert restarted["LaunchTime"] >= stopped["LaunchTime"]
    [end] = ec2_now.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"]
    assert (end["PreviousState"]["Name"], end["CurrentState"]) == ("running", {"Code": 32, "Name": "shutting-down"})
    terminated = described(ec2_now, instance_id)[0]
    assert terminated["State"] == {"Code": 48, "Name": "terminated"}
    assert "PrivateIpAddress" not in terminated  # terminated instances stay visible, without an address


@pytest.mark.parametrize(
    ("change", "passing", "settled"),
    [(None, "pending", "running"), ("stop", "stopping", "stopped"), ("terminate", "shutting-down", "terminated")],
)
def test_passing_states_last_the_transition_and_settle_at_its_end(
    clocked: RoleportServer, change: str | None, passing: str, settled: str
) -> None:
    ec2 = clocked.client("ec2")
    instance_id = launch(ec2)["Instances"][0]["InstanceId"]
    if change is not None:
        clocked.advance(TRANSITION)
        getattr(ec2, f"{change}_instances")(InstanceIds=[instance_id])
    assert state_of(ec2, instance_id) == passing
    clocked.advance(TRANSITION - 0.5)
    assert state_of(ec2, instance_id) == passing
    clocked.advance(0.5)  # exactly TRANSITION after the change
    assert state_of(ec2, instance_id) == settled


def test_stopping_a_pending_instance_is_incorrect_instance_state(ec2_clocked: Any) -> None:
    instance_id = launch(ec2_clocked)["Instances"][0]["InstanceId"]
    assert error_of(ec2_clocked.stop_instances, InstanceIds=[instance_id]) == {
        "Code": "IncorrectInstanceState",
        "Message": f"Instance '{instance_id}' cannot be stopped as it has never reached the 'running' state.",
        "Status": 400,
    }


def test_starting_a_stopping_instance_is_incorrect_instance_state(clocked: RoleportServer) -> None:
    ec2 = clocked.client("ec2")
    instance_id = launch(ec2)["Instances"][0]["InstanceId"]
    clocked.advance(TRANSITION)
    ec2.stop_instances(InstanceIds=[instance_id])
    assert state_of(ec2, instance_id) == "stopping"
    assert error_of(ec2.start_instances, InstanceIds=[instance_id]) == {
        "Code": "IncorrectInstanceState",
        "Message": f"The instance '{instance_id}' is not in a state from which it can be started.",
        "Status": 400,
    }


def test_terminated_instances_can_be_neither_started_nor_stopped(ec2_now: Any) -> None:
    instance_id = launch(ec2_now)["Instances"][0]["InstanceId"]
    ec2_now.terminate_instances(InstanceIds=[instance_id])
    error = error_of(ec2_now.start_instances, InstanceIds=[instance_id])
    assert (error["Code"], error["Message"]) == (
        "IncorrectInstanceState",
        f"The instance '{instance_id}' is not in a state from which it can be started.",
    )
    error = error_of(ec2_now.stop_instances, InstanceIds=[instance_id])
    assert error["Message"] == f"The instance '{instance_id}' is not in a state from which it can be stopped."


def test_repeating_a_state_change_is_not_an_error(ec2_now: Any) -> None:
    instance_id = launch(ec2_now)["Instances"][0]["InstanceId"]
    [again] = ec2_now.start_instances(InstanceIds=[instance_id])["StartingInstances"]
    assert again["PreviousState"] == again["CurrentState"] == {"Code": 16, "Name": "running"}
    ec2_now.stop_instances(InstanceIds=[instance_id])
    [again] = ec2_now.stop_instances(InstanceIds=[instance_id])["StoppingInstances"]
    assert again["PreviousState"] == again["CurrentState"] == {"Code": 80, "Name": "stopped"}
    ec2_now.terminate_instances(InstanceIds=[instance_id])
    [again] = ec2_now.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"]
    assert again["PreviousState"] == again["CurrentState"] == {"Code": 48, "Name": "terminated"}


def test_a_list_of_instances_changes_all_or_nothing(ec2_now: Any) -> None:
    ready, gone = (i["InstanceId"] for i in launch(ec2_now, 2)["Instances"])
    ec2_now.terminate_instances(InstanceIds=[gone])
    assert error_of(ec2_now.stop_instances, InstanceIds=[ready, gone])["Code"] == "IncorrectInstanceState"
    assert state_of(ec2_now, ready) == "running"
    error = error_of(ec2_now.terminate_instances, InstanceIds=[ready, "i-0123456789abcdef0"])
    assert error["Code"] == "InvalidInstanceID.NotFound"
    assert state_of(ec2_now, ready) == "running"


def test_state_change_results_follow_the_request_order(ec2_now: Any) -> None:
    ids = [i["InstanceId"] for i in launch(ec2_now, 3)["Instances"]]
    order = [ids[2], ids[0], ids[1]]
    changes = ec2_now.terminate_instances(InstanceIds=order)["TerminatingInstances"]
    assert [change["InstanceId"] for change in changes] == order


def test_dry_run_changes_no_state(ec2_now: Any) -> None:
    instance_id = launch(ec2_now)["Instances"][0]["InstanceId"]
    assert error_of(ec2_now.stop_instances, InstanceIds=[instance_id], DryRun=True)["Code"] == "DryRunOperation"
    assert error_of(ec2_now.terminate_instances, InstanceIds=[instance_id], DryRun=True)["Status"] == 412
    assert state_of(ec2_now, instance_id) == "running"


def test_unknown_instance_cannot_be_stopped(ec2: Any) -> None:
    assert error_of(ec2.stop_instances, InstanceIds=["i-0123456789abcdef0"])["Code"] == "InvalidInstanceID.NotFound"
    assert error_of(ec2.start_instances, InstanceIds=["bogus"])["Code"] == "InvalidInstanceID.Malformed"


# ---------------------------------------------------------------------------------------------- waiters


def test_waiters_return_at_their_first_poll_once_the_state_has_settled(clocked: RoleportServer) -> None:
    # One attempt each: a waiter whose first poll missed would fail rather than sleep 15 s and poll again.
    ec2 = clocked.client("ec2")
    instance_id = launch(ec2)["Instances"][0]["InstanceId"]
    polls = polls_of(ec2)
    once = {"Delay": 0, "MaxAttempts": 1}
    clocked.advance(TRANSITION)
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=once)
    ec2.stop_instances(InstanceIds=[instance_id])
    clocked.advance(TRANSITION)
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=once)
    ec2.terminate_instances(InstanceIds=[instance_id])
    clocked.advance(TRANSITION)
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=once)
    assert polls == [["running"], ["stopped"], ["terminated"]]


def test_instance_running_waiter_waits_out_the_pending_state(clocked: RoleportServer) -> None:
    ec2 = clocked.client("ec2")
    instance_id = launch(ec2)["Instances"][0]["InstanceId"]

    def boot_after_the_first_poll(states: list[str]) -> None:
        if states == ["pending"]:
            clocked.advance(TRANSITION)

    polls = polls_of(ec2, on_poll=boot_after_the_first_poll)
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 0, "MaxAttempts": 2})
    assert polls == [["pending"], ["running"]]


# ---------------------------------------------------------------------------------------------- metadata options


def test_modify_metadata_options_is_pending_then_applied(ec2_now: Any) -> None:
    instance_id = launch(ec2_now)["Instances"][0]["InstanceId"]
    result = ec2_now.modify_instance_metadata_options(
        InstanceId=instance_id, HttpTokens="required", HttpPutResponseHopLimit=3, HttpEndpoint="disabled"
    )
    assert result["InstanceId"] == instance_id
    assert result["InstanceMetadataOptions"] == {
        "State": "pending",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 3,
        "HttpEndpoint": "disabled",
        "HttpProtocolIpv6": "disabled",
        "InstanceMetadataTags": "disabled",
    }
    shown = described(ec2_now, instance_id)[0]["MetadataOptions"]
    assert shown == {**result["InstanceMetadataOptions"], "State": "applied"}
    ec2_now.modify_instance_metadata_options(InstanceId=instance_id, InstanceMetadataTags="enabled")
    shown = described(ec2_now, instance_id)[0]["MetadataOptions"]
    assert (shown["HttpTokens"], shown["InstanceMetadataTags"]) == ("required", "enabled")


def test_modify_metadata_options_errors(ec2_now: Any) -> None:
    instance_id = launch(ec2_now)["Instances"][0]["InstanceId"]
    error = error_of(ec2_now.modify_instance_metadata_options, InstanceId=instance_id, HttpPutResponseHopLimit=0)
    assert (error["Code"], error["Status"]) == ("InvalidParameterValue", 400)
    error = error_of(ec2_now.modify_instance_metadata_options, InstanceId="i-0123456789abcdef0", HttpTokens="required")
    assert error["Code"] == "InvalidInstanceID.NotFound"
    ec2_now.terminate_instances(InstanceIds=[instance_id])
    error = error_of(ec2_now.modify_instance_metadata_options, InstanceId=instance_id, HttpTokens="required")
    assert error["Code"] == "IncorrectInstanceState"


# ---------------------------------------------------------------------------------------------- persistence


def test_instances_survive_a_restart(
    make_server: Callable[..., RoleportServer], backend: str | None, name: Any
) -> None:
    running = make_server(database_url=backend, state_transition_seconds=0)
    iam = running.client("iam")
    iam.create_instance_profile(InstanceProfileName=name("keep"))
    ec2 = running.client("ec2")
    [instance] = launch(ec2, IamInstanceProfile={"Name": name("keep")}, **tagged(name("keep")))["Instances"]
    ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    before = described(ec2, instance["InstanceId"])[0]
    running.stop()
    running.start()
    after = described(running.client("ec2"), instance["InstanceId"])[0]
    assert after == before
    assert after["State"]["Name"] == "stopped"
    assert after["IamInstanceProfile"] == instance["IamInstanceProfile"]
