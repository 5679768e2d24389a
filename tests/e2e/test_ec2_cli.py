"""EC2 through the real `aws` CLI with AWS_ENDPOINT_URL set: the seed flow verbatim, waiters, paging, errors."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from roleport.testing import RoleportServer
from tests.conftest import cli_env
from tests.e2e.conftest import TRANSITION

AMI = "ami-0abcdef1234567890"
TRUST = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, '
    '"Action": "sts:AssumeRole"}]}'
)


def aws(server: RoleportServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["aws", *args], capture_output=True, text=True, env=cli_env(server), timeout=120)


def ok(server: RoleportServer, *args: str) -> Any:
    """Run a command that must succeed; its JSON output, if any."""
    done = aws(server, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def fails(server: RoleportServer, *args: str) -> str:
    done = aws(server, *args)
    assert done.returncode != 0, done.stdout  # 255 from awscli v1, 254 from v2
    return done.stderr


def role_with_profile(server: RoleportServer, role_name: str) -> None:
    """The IAM side of the seed, set up through boto3: the EC2 commands are what this suite runs verbatim."""
    iam = server.client("iam")
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST)
    iam.create_instance_profile(InstanceProfileName=role_name)
    iam.add_role_to_instance_profile(InstanceProfileName=role_name, RoleName=role_name)


def shell(server: RoleportServer, command: str, **variables: str) -> Any:
    """A command line exactly as a user types it, run by bash with $I, $A... set; its JSON output."""
    env = {**cli_env(server), **variables}
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def test_seed_flow_verbatim(make_server: Callable[..., RoleportServer], backend: str | None) -> None:
    # Its own server, as nothing else uses the seed's literal names; on the controlled clock, which the test moves
    # where a user would wait for the instance to boot.
    running = make_server(database_url=backend, clock="controlled", state_transition_seconds=TRANSITION)
    role_with_profile(running, "TestRole-1")
    role_with_profile(running, "TestRole-2")
    launched = shell(
        running,
        "aws ec2 run-instances --image-id ami-0abcdef1234567890 --instance-type t3.micro "
        "--iam-instance-profile Name=TestRole-1",
    )
    [first] = launched["Instances"]
    assert first["IamInstanceProfile"]["Arn"] == "arn:aws:iam::123456789012:instance-profile/TestRole-1"
    assert (first["State"]["Name"], first["InstanceType"]) == ("pending", "t3.micro")
    # That instance already has TestRole-1, so associating it again is AWS's IncorrectState...
    running.advance(TRANSITION)
    ok(running, "ec2", "wait", "instance-running", "--instance-ids", first["InstanceId"])
    again = fails(
        running,
        *["ec2", "associate-iam-instance-profile", "--instance-id", first["InstanceId"]],
        *["--iam-instance-profile", "Name=TestRole-1"],
    )
    assert "(IncorrectState) when calling the AssociateIamInstanceProfile operation: There is an existing " in again
    # ...so a second instance, launched without a profile, takes the association flow.
    [second] = ok(running, *f"ec2 run-instances --image-id {AMI} --instance-type t3.micro".split())["Instances"]
    instance = second["InstanceId"]
    running.advance(TRANSITION)
    ok(running, "ec2", "wait", "instance-running", "--instance-ids", instance)
    associated = shell(
        running,
        'aws ec2 associate-iam-instance-profile --instance-id $I --iam-instance-profile Name="TestRole-1"',
        I=instance,
    )["IamInstanceProfileAssociation"]
    assert (associated["InstanceId"], associated["State"]) == (instance, "associating")
    listed = shell(running, "aws ec2 describe-iam-instance-profile-associations")["IamInstanceProfileAssociations"]
    # On PostgreSQL this server shares its database with the session's, so others' associations may be listed too.
    assert {a["InstanceId"] for a in listed} >= {first["InstanceId"], instance}
    replaced = shell(
        running,
        'aws ec2 replace-iam-instance-profile-association --association-id $A --iam-instance-profile Name="TestRole-2"',
        A=associated["AssociationId"],
    )["IamInstanceProfileAssociation"]
    assert replaced["AssociationId"] != associated["AssociationId"]
    assert replaced["IamInstanceProfile"]["Arn"] == "arn:aws:iam::123456789012:instance-profile/TestRole-2"
    ended = shell(running, "aws ec2 disassociate-iam-instance-profile --association-id $A", A=replaced["AssociationId"])
    assert ended["IamInstanceProfileAssociation"]["State"] == "disassociating"
    shown = ok(running, "ec2", "describe-instances", "--instance-ids", instance)["Reservations"][0]["Instances"][0]
    assert "IamInstanceProfile" not in shown


def polls_of_wait(server: RoleportServer, waiter: str, instance_id: str) -> int:
    """Run `aws ec2 wait WAITER`, which must succeed; the DescribeInstances polls it made (from its --debug log)."""
    done = aws(server, "--debug", "ec2", "wait", waiter, "--instance-ids", instance_id)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr.count("Making request for OperationModel(name=DescribeInstances)")


def state_shown(server: RoleportServer, instance_id: str) -> str:
    found = ok(server, "ec2", "describe-instances", "--instance-ids", instance_id)
    return str(found["Reservations"][0]["Instances"][0]["State"]["Name"])


def test_cli_waiters_return_at_their_first_poll_once_the_state_has_settled(clocked: RoleportServer) -> None:
    # A waiter that missed its first poll would sleep 15 s before the next; on the controlled clock nothing would
    # have changed by then, so it could never succeed: one poll each is the only way through.
    [instance] = ok(clocked, *f"ec2 run-instances --image-id {AMI} --count 1".split())["Instances"]
    instance_id = instance["InstanceId"]
    assert state_shown(clocked, instance_id) == "pending"
    clocked.advance(TRANSITION)
    assert polls_of_wait(clocked, "instance-running", instance_id) == 1
    stopping = ok(clocked, "ec2", "stop-instances", "--instance-ids", instance_id)["StoppingInstances"][0]
    assert stopping["CurrentState"] == {"Code": 64, "Name": "stopping"}
    assert state_shown(clocked, instance_id) == "stopping"
    clocked.advance(TRANSITION)
    assert polls_of_wait(clocked, "instance-stopped", instance_id) == 1
    ok(clocked, "ec2", "terminate-instances", "--instance-ids", instance_id)
    assert state_shown(clocked, instance_id) == "shutting-down"
    clocked.advance(TRANSITION)
    assert polls_of_wait(clocked, "instance-terminated", instance_id) == 1


def test_cli_filters_query_and_pages(server: RoleportServer, name: Any) -> None:
    suite = name("cli")
    ok(
        server,
        *f"ec2 run-instances --image-id {AMI} --count 7".split(),
        "--tag-specifications",
        f"ResourceType=instance,Tags=[{{Key=suite,Value={suite}}}]",
    )
    query = ["--query", "Reservations[].Instances[].InstanceId"]
    everything = ok(server, "ec2", "describe-instances", "--filters", f"Name=tag:suite,Values={suite}", *query)
    paged = ok(
        server, "ec2", "describe-instances", "--filters", f"Name=tag:suite,Values={suite}", "--page-size", "5", *query
    )
    assert len(everything) == 7 and sorted(paged) == sorted(everything)
    text = aws(
        server,
        *["ec2", "describe-instances", "--filters"],
        f"Name=tag:suite,Values={suite}",
        "Name=instance-type,Values=m1.small",
        *query,
        "--output",
        "text",
    )
    assert sorted(text.stdout.split()) == sorted(everything)


def test_cli_association_pages(server: RoleportServer, name: Any) -> None:
    ok(server, "iam", "create-instance-profile", "--instance-profile-name", name("cli-prof"))
    launched = ok(
        server,
        *f"ec2 run-instances --image-id {AMI} --count 6".split(),
        "--iam-instance-profile",
        f"Name={name('cli-prof')}",
    )
    ids = [i["InstanceId"] for i in launched["Instances"]]
    listed = ok(
        server,
        *["ec2", "describe-iam-instance-profile-associations", "--page-size", "5", "--filters"],
        f"Name=instance-id,Values={','.join(ids)}",
    )["IamInstanceProfileAssociations"]
    assert sorted(a["InstanceId"] for a in listed) == sorted(ids)


def test_cli_reports_ec2_errors_and_dry_runs(server: RoleportServer, name: Any) -> None:
    missing = fails(server, "ec2", "describe-instances", "--instance-ids", "i-0123456789abcdef0")
    assert (
        "An error occurred (InvalidInstanceID.NotFound) when calling the DescribeInstances operation: "
        "The instance ID 'i-0123456789abcdef0' does not exist"
    ) in missing
    dry = fails(
        server,
        *f"ec2 run-instances --image-id {AMI} --dry-run".split(),
        "--tag-specifications",
        f"ResourceType=instance,Tags=[{{Key=suite,Value={name('dry')}}}]",
    )
    assert "(DryRunOperation) when calling the RunInstances operation: Request would have succeeded" in dry
    found = ok(server, "ec2", "describe-instances", "--filters", f"Name=tag:suite,Values={name('dry')}")
    assert found["Reservations"] == []
    malformed = fails(server, "ec2", "run-instances", "--image-id", "ami-nope")
    assert 'InvalidAMIID.Malformed) when calling the RunInstances operation: Invalid id: "ami-nope"' in malformed


def test_cli_modifies_metadata_options(server: RoleportServer) -> None:
    [instance] = ok(server, *f"ec2 run-instances --image-id {AMI}".split())["Instances"]
    changed = ok(
        server,
        *f"ec2 modify-instance-metadata-options --instance-id {instance['InstanceId']}".split(),
        *["--http-tokens", "required", "--http-put-response-hop-limit", "2"],
    )
    assert changed["InstanceMetadataOptions"]["State"] == "pending"
    assert (changed["InstanceMetadataOptions"]["HttpTokens"], changed["InstanceId"]) == (
        "required",
        instance["InstanceId"],
    )
