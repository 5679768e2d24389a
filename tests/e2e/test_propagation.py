"""Eventual consistency through real clients: IAM changes reach EC2, the metadata service, authorization and STS
after the propagation delay; association changes reach the metadata service after the association delay; IAM's own
reads stay consistent. The server's clock is controlled, so the delays pass when the test says."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.config import Config

from roleport.testing import RoleportError, RoleportServer
from tests.conftest import EC2_TRUST
from tests.e2e.helpers import error_of
from tests.e2e.principals import allow, policy

AMI = "ami-0abcdef1234567890"
ONE_TRY = Config(retries={"max_attempts": 1})


@pytest.fixture(scope="module")
def lagging_server(backend: str | None) -> Iterator[RoleportServer]:
    with RoleportServer(clock="controlled", state_transition_seconds=0, database_url=backend) as running:
        yield running


@pytest.fixture
def lagging(lagging_server: RoleportServer) -> RoleportServer:
    """The module's server, empty, with everything consistent at once until the test sets a delay."""
    lagging_server.set_propagation(delay=0, jitter=0, association_delay=0)
    lagging_server.flush()
    lagging_server.reset()
    return lagging_server


def client(server: RoleportServer, service: str, credentials: dict[str, str] | None = None) -> Any:
    if credentials is None:
        return server.client(service, config=ONE_TRY)
    return boto3.client(
        service,
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=credentials["key"],
        aws_secret_access_key=credentials["secret"],
        aws_session_token=credentials.get("token"),
        config=ONE_TRY,
    )


def profile_with_role(iam: Any, profile: str, role: str) -> None:
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=EC2_TRUST)
    iam.create_instance_profile(InstanceProfileName=profile)
    iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)


def run(ec2: Any, **extra: Any) -> str:
    reply = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, **extra)
    return str(reply["Instances"][0]["InstanceId"])


def metadata(server: RoleportServer, instance: str, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(server.metadata_endpoint(instance) + path, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as failure:
        with failure:
            return failure.code, failure.read().decode()


def instance_credentials(server: RoleportServer, instance: str) -> dict[str, str]:
    status, role = metadata(server, instance, "latest/meta-data/iam/security-credentials/")
    assert status == 200, role
    status, text = metadata(server, instance, f"latest/meta-data/iam/security-credentials/{role}")
    document = json.loads(text)
    assert document["Code"] == "Success", document
    return {"key": document["AccessKeyId"], "secret": document["SecretAccessKey"], "token": document["Token"]}


def caller_role(server: RoleportServer, instance: str) -> str:
    """The role the instance's current credentials act as, by GetCallerIdentity (assumed-role/ROLE/i-...)."""
    arn = client(server, "sts", instance_credentials(server, instance)).get_caller_identity()["Arn"]
    return str(arn.split("/")[1])


def invalid_profile(name: str) -> dict[str, str]:
    message = f"Value ({name}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
    return {"Code": "InvalidParameterValue", "Message": message}


# ---------------------------------------------------------------------------------------------- EC2


def test_ec2_refuses_a_profile_younger_than_the_delay(lagging: RoleportServer) -> None:
    iam, ec2 = client(lagging, "iam"), client(lagging, "ec2")
    lagging.set_propagation(delay=30)
    profile_with_role(iam, "fresh", "fresh-role")
    # IAM itself is read-after-write consistent.
    assert iam.get_instance_profile(InstanceProfileName="fresh")["InstanceProfile"]["Roles"][0]["RoleName"] == (
        "fresh-role"
    )
    found = error_of(ec2.run_instances, ImageId=AMI, MinCount=1, MaxCount=1, IamInstanceProfile={"Name": "fresh"})
    assert {k: found[k] for k in ("Code", "Message")} == invalid_profile("fresh")
    bare = run(ec2)
    assert error_of(ec2.associate_iam_instance_profile, InstanceId=bare, IamInstanceProfile={"Name": "fresh"})[
        "Code"
    ] == ("InvalidParameterValue")
    lagging.advance(29.9)
    assert error_of(ec2.run_instances, ImageId=AMI, MinCount=1, MaxCount=1, IamInstanceProfile={"Name": "fresh"})
    lagging.advance(0.2)
    run(ec2, IamInstanceProfile={"Name": "fresh"})
    ec2.associate_iam_instance_profile(InstanceId=bare, IamInstanceProfile={"Name": "fresh"})


def test_replace_refuses_a_young_profile_too(lagging: RoleportServer) -> None:
    iam, ec2 = client(lagging, "iam"), client(lagging, "ec2")
    profile_with_role(iam, "old", "old-role")
    instance = run(ec2, IamInstanceProfile={"Name": "old"})
    association = ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"][0]
    lagging.set_propagation(delay=30)
    profile_with_role(iam, "young", "young-role")
    found = error_of(
        ec2.replace_iam_instance_profile_association,
        AssociationId=association["AssociationId"],
        IamInstanceProfile={"Name": "young"},
    )
    assert {k: found[k] for k in ("Code", "Message")} == invalid_profile("young")
    lagging.advance(30)
    ec2.replace_iam_instance_profile_association(
        AssociationId=association["AssociationId"], IamInstanceProfile={"Name": "young"}
    )
    assert caller_role(lagging, instance) == "young-role"


def test_a_deleted_profile_still_passes_until_the_delay(lagging: RoleportServer) -> None:
    iam, ec2 = client(lagging, "iam"), client(lagging, "ec2")
    iam.create_instance_profile(InstanceProfileName="doomed")
    lagging.set_propagation(delay=20)
    iam.delete_instance_profile(InstanceProfileName="doomed")
    assert error_of(iam.get_instance_profile, InstanceProfileName="doomed")["Code"] == "NoSuchEntity"
    run(ec2, IamInstanceProfile={"Name": "doomed"})
    lagging.advance(20)
    found = error_of(ec2.run_instances, ImageId=AMI, MinCount=1, MaxCount=1, IamInstanceProfile={"Name": "doomed"})
    assert found["Code"] == "InvalidParameterValue"


def test_a_retry_loop_gets_through_after_the_real_delay(tmp_path: Any) -> None:
    """With the real clock and the flag set at start: the first RunInstances fails, a retry after the delay works."""
    with RoleportServer(data_dir=tmp_path, propagation_delay=1.5, state_transition_seconds=0) as server:
        iam, ec2 = client(server, "iam"), client(server, "ec2")
        profile_with_role(iam, "retry", "retry-role")
        made = time.monotonic()
        failures = 0
        while True:
            try:
                run(ec2, IamInstanceProfile={"Name": "retry"})
                break
            except ec2.exceptions.ClientError as failure:
                assert failure.response["Error"]["Code"] == "InvalidParameterValue"
                failures += 1
                assert time.monotonic() - made < 30, "the profile never became visible to EC2"
                time.sleep(0.2)
        waited = time.monotonic() - made
    assert failures >= 1 and waited >= 1.4


# ---------------------------------------------------------------------------------------------- metadata service


def test_credentials_keep_the_old_role_until_the_delay_and_replace_switches_at_once(lagging: RoleportServer) -> None:
    iam, ec2 = client(lagging, "iam"), client(lagging, "ec2")
    profile_with_role(iam, "first", "first-role")
    profile_with_role(iam, "second", "second-role")
    instance = run(ec2, IamInstanceProfile={"Name": "first"})
    before = instance_credentials(lagging, instance)
    assert caller_role(lagging, instance) == "first-role"

    lagging.set_propagation(delay=3600)  # "can take up to an hour" (the seeds)
    iam.remove_role_from_instance_profile(InstanceProfileName="first", RoleName="first-role")
    assert iam.get_instance_profile(InstanceProfileName="first")["InstanceProfile"]["Roles"] == []
    lagging.advance(1800)
    assert instance_credentials(lagging, instance) == before  # the old role, the same credentials
    assert caller_role(lagging, instance) == "first-role"

    association = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance]}]
    )
    association_id = association["IamInstanceProfileAssociations"][0]["AssociationId"]
    ec2.replace_iam_instance_profile_association(AssociationId=association_id, IamInstanceProfile={"Name": "second"})
    assert caller_role(lagging, instance) == "second-role"  # at once: replacing is the fast path


def test_removing_the_role_takes_effect_once_the_delay_has_run(lagging: RoleportServer) -> None:
    iam, ec2 = client(lagging, "iam"), client(lagging, "ec2")
    profile_with_role(iam, "emptied", "emptied-role")
    instance = run(ec2, IamInstanceProfile={"Name": "emptied"})
    lagging.set_propagation(delay=60)
    iam.remove_role_from_instance_profile(InstanceProfileName="emptied", RoleName="emptied-role")
    assert metadata(lagging, instance, "latest/meta-data/iam/security-credentials/") == (200, "emptied-role")
    lagging.advance(60)
    assert metadata(lagging, instance, "latest/meta-data/iam/security-credentials/")[0] == 404
    info = json.loads(metadata(lagging, instance, "latest/meta-data/iam/info")[1])
    assert info["Code"] == "Success" and info["Message"] == "Instance Profile does not contain a role."


def test_a_role_added_reaches_the_instance_after_the_delay(lagging: RoleportServer) -> None:
    iam, ec2 = client(lagging, "iam"), client(lagging, "ec2")
    iam.create_instance_profile(InstanceProfileName="filled")
    iam.create_role(RoleName="filled-role", AssumeRolePolicyDocument=EC2_TRUST)
    instance = run(ec2, IamInstanceProfile={"Name": "filled"})
    lagging.set_propagation(delay=15)
    iam.add_role_to_instance_profile(InstanceProfileName="filled", RoleName="filled-role")
    assert metadata(lagging, instance, "latest/meta-data/iam/security-credentials/")[0] == 404
    lagging.advance(15)
    assert caller_role(lagging, instance) == "filled-role"


def test_association_changes_reach_the_metadata_service_after_the_association_delay(lagging: RoleportServer) -> None:
    iam, ec2 = client(lagging, "iam"), client(lagging, "ec2")
    profile_with_role(iam, "assoc-a", "assoc-a-role")
    profile_with_role(iam, "assoc-b", "assoc-b-role")
    instance = run(ec2, IamInstanceProfile={"Name": "assoc-a"})
    lagging.set_propagation(association_delay=5)
    association = ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"][0]
    replaced = ec2.replace_iam_instance_profile_association(
        AssociationId=association["AssociationId"], IamInstanceProfile={"Name": "assoc-b"}
    )["IamInstanceProfileAssociation"]
    assert caller_role(lagging, instance) == "assoc-a-role"
    lagging.advance(5)
    assert caller_role(lagging, instance) == "assoc-b-role"
    ec2.disassociate_iam_instance_profile(AssociationId=replaced["AssociationId"])
    assert metadata(lagging, instance, "latest/meta-data/iam/security-credentials/") == (200, "assoc-b-role")
    lagging.advance(5)
    assert metadata(lagging, instance, "latest/meta-data/iam/")[0] == 404


# ---------------------------------------------------------------------------------------------- authorization, STS


def user_credentials(iam: Any, user: str) -> dict[str, str]:
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def test_policy_changes_take_effect_after_the_delay(lagging: RoleportServer) -> None:
    iam = client(lagging, "iam")
    managed = iam.create_policy(PolicyName="list-roles", PolicyDocument=policy(allow("iam:ListRoles")))["Policy"]
    alice = client(lagging, "iam", user_credentials(iam, "alice"))
    lagging.set_propagation(delay=30)

    iam.attach_user_policy(UserName="alice", PolicyArn=managed["Arn"])
    assert error_of(alice.list_roles)["Code"] == "AccessDenied"  # not yet attached, as authorization sees it
    lagging.advance(30)
    alice.list_roles()

    iam.detach_user_policy(UserName="alice", PolicyArn=managed["Arn"])
    alice.list_roles()  # a detached policy still allows until the delay
    lagging.advance(30)
    assert error_of(alice.list_roles)["Code"] == "AccessDenied"

    iam.put_user_policy(UserName="alice", PolicyName="inline", PolicyDocument=policy(allow("iam:ListRoles")))
    assert error_of(alice.list_roles)["Code"] == "AccessDenied"
    lagging.advance(30)
    alice.list_roles()
    iam.delete_user_policy(UserName="alice", PolicyName="inline")
    alice.list_roles()
    lagging.advance(30)
    assert error_of(alice.list_roles)["Code"] == "AccessDenied"


def test_a_new_default_policy_version_takes_effect_after_the_delay(lagging: RoleportServer) -> None:
    iam = client(lagging, "iam")
    managed = iam.create_policy(PolicyName="versioned", PolicyDocument=policy(allow("iam:ListRoles")))["Policy"]
    bob_credentials = user_credentials(iam, "bob")
    iam.attach_user_policy(UserName="bob", PolicyArn=managed["Arn"])
    bob = client(lagging, "iam", bob_credentials)
    bob.list_roles()
    lagging.set_propagation(delay=10)
    iam.create_policy_version(
        PolicyArn=managed["Arn"], PolicyDocument=policy(allow("iam:ListUsers")), SetAsDefault=True
    )
    bob.list_roles()
    assert error_of(bob.list_users)["Code"] == "AccessDenied"
    lagging.advance(10)
    bob.list_users()
    assert error_of(bob.list_roles)["Code"] == "AccessDenied"


def test_a_fresh_role_cannot_be_assumed_until_the_delay(lagging: RoleportServer) -> None:
    iam = client(lagging, "iam")
    carol = user_credentials(iam, "carol")
    iam.put_user_policy(UserName="carol", PolicyName="assume", PolicyDocument=policy(allow("sts:AssumeRole")))
    lagging.set_propagation(delay=10)
    trust = policy(
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}
    )
    role_arn = iam.create_role(RoleName="fresh-target", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    sts = client(lagging, "sts", carol)
    assert error_of(sts.assume_role, RoleArn=role_arn, RoleSessionName="early")["Code"] == "AccessDenied"
    lagging.advance(10)
    assumed = sts.assume_role(RoleArn=role_arn, RoleSessionName="later")["AssumedRoleUser"]["Arn"]
    assert assumed.endswith("assumed-role/fresh-target/later")


# ---------------------------------------------------------------------------------------------- jitter, control


def test_jitter_keeps_each_change_within_delay_and_delay_plus_jitter(lagging: RoleportServer) -> None:
    iam, ec2 = client(lagging, "iam"), client(lagging, "ec2")
    lagging.set_propagation(delay=10, jitter=5)

    def visible_after(profile: str) -> float:
        """Seconds from making the profile to the instant the server will let EC2 see it."""
        made = lagging.now()
        iam.create_instance_profile(InstanceProfileName=profile)
        newest = lagging.propagation()["pending"][-1]["visible_at"]
        return (_time(newest) - made).total_seconds()

    offsets = []
    for index in range(6):
        offsets.append(visible_after(f"jittery-{index}"))
        lagging.advance(5)  # a jitter apart, so no change waits behind the one before it
    assert all(10 <= offset <= 15.001 for offset in offsets), offsets
    assert len(set(offsets)) > 1
    lagging.flush()
    offset = visible_after("probe")
    lagging.advance(offset - 0.01)
    assert error_of(ec2.run_instances, ImageId=AMI, MinCount=1, MaxCount=1, IamInstanceProfile={"Name": "probe"})
    lagging.advance(0.02)
    run(ec2, IamInstanceProfile={"Name": "probe"})
    assert lagging.propagation()["pending"] == []


def test_flush_makes_every_change_visible_now(lagging: RoleportServer) -> None:
    iam, ec2 = client(lagging, "iam"), client(lagging, "ec2")
    lagging.set_propagation(delay=3600)
    profile_with_role(iam, "flushed", "flushed-role")
    assert lagging.propagation()["pending"]
    assert lagging.flush() > 0
    assert lagging.propagation()["pending"] == []
    run(ec2, IamInstanceProfile={"Name": "flushed"})


def test_reset_empties_the_state_and_keeps_the_root_keys(lagging: RoleportServer) -> None:
    iam, ec2 = client(lagging, "iam"), client(lagging, "ec2")
    profile_with_role(iam, "kept-not", "kept-not-role")
    user_credentials(iam, "dave")
    run(ec2, IamInstanceProfile={"Name": "kept-not"})
    lagging.reset()
    assert iam.list_roles()["Roles"] == [] and iam.list_instance_profiles()["InstanceProfiles"] == []
    assert iam.list_users()["Users"] == []
    assert ec2.describe_instances()["Reservations"] == []
    managed = iam.list_policies(Scope="AWS", MaxItems=1000)["Policies"]
    assert "AmazonSSMManagedInstanceCore" in {p["PolicyName"] for p in managed}
    profile_with_role(iam, "kept-not", "kept-not-role")  # names are free again, quotas counted afresh


def test_the_propagation_settings_are_read_and_checked(lagging: RoleportServer) -> None:
    settings = lagging.set_propagation(delay=2.5, jitter=1, association_delay=0.5)
    assert {k: settings[k] for k in ("delay_seconds", "jitter_seconds", "association_delay_seconds")} == {
        "delay_seconds": 2.5,
        "jitter_seconds": 1.0,
        "association_delay_seconds": 0.5,
    }
    for bad in ({"delay_seconds": -1}, {"jitter_seconds": "soon"}, {"delay_seconds": True}, {"later": 1}, {}):
        with pytest.raises(RoleportError) as raised:
            lagging._call("POST", "/_roleport/propagation", bad)
        assert raised.value.status == 400 and raised.value.code == "InvalidRequest"
    assert lagging.propagation()["delay_seconds"] == 2.5  # a refused request changes nothing


def test_control_endpoints_need_the_root_signature(lagging: RoleportServer) -> None:
    intruder = RoleportServer(port=lagging.port, data_dir=lagging.data_dir, secret_key="wrong")
    for call in (intruder.propagation, intruder.flush, intruder.reset):
        with pytest.raises(RoleportError) as raised:
            call()
        assert raised.value.status == 403 and raised.value.code == "SignatureDoesNotMatch"
    request = urllib.request.Request(f"{lagging.endpoint_url}/_roleport/reset", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(request, timeout=10)
    assert unsigned.value.code == 403
    unsigned.value.close()


def test_serve_refuses_a_negative_delay() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "roleport", "serve", "--propagation-delay", "-1"], capture_output=True, timeout=60
    )
    assert done.returncode == 2 and b"--propagation-delay" in done.stderr


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_concurrent_writers_while_journaling_keep_the_rules_and_never_fail(lagging: RoleportServer) -> None:
    """Writers queue on the journal: creating and deleting roles at once, and 20 roles raced into one profile,
    give AWS's answers (exactly one role wins), never a failure of the server, on either store."""
    from concurrent.futures import ThreadPoolExecutor

    iam = client(lagging, "iam")
    for index in range(20):
        iam.create_role(RoleName=f"racer-{index}", AssumeRolePolicyDocument=EC2_TRUST)
    iam.create_instance_profile(InstanceProfileName="raced")
    lagging.set_propagation(delay=30)

    def add(index: int) -> str:
        try:
            client(lagging, "iam").add_role_to_instance_profile(InstanceProfileName="raced", RoleName=f"racer-{index}")
            return "ok"
        except iam.exceptions.ClientError as failure:
            return str(failure.response["Error"]["Code"])

    def churn(index: int) -> str:
        own = client(lagging, "iam")
        own.create_role(RoleName=f"churn-{index}", AssumeRolePolicyDocument=EC2_TRUST)
        own.delete_role(RoleName=f"churn-{index}")
        return "ok"

    with ThreadPoolExecutor(max_workers=12) as pool:  # both kinds of writer at once
        adding = [pool.submit(add, index) for index in range(20)]
        churning = [pool.submit(churn, index) for index in range(10)]
        added = [future.result() for future in adding]
        churned = [future.result() for future in churning]
    assert sorted(added) == ["LimitExceeded"] * 19 + ["ok"]
    assert churned == ["ok"] * 10
    assert len(iam.get_instance_profile(InstanceProfileName="raced")["InstanceProfile"]["Roles"]) == 1
