"""Concurrent writes to one role, user, instance profile, policy or association, fired by threads through two
`roleport serve` processes on one database (PostgreSQL, and a SQLite file): every answer is a success or AWS's error
for the state the call found, never a 5xx, and no quota is ever exceeded.

The two servers run a controlled clock set to the same instant, with EC2 states settling at once, so what an
association looks like to a caller that lost a race does not depend on which server's clock read later."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from roleport.testing import RoleportServer
from tests.conftest import EC2_TRUST, ROOT_KEY, ROOT_SECRET, postgres_database, start_server

pytestmark = pytest.mark.postgresql

AMI = "ami-0abcdef1234567890"
WORKERS = 12
DOCUMENT = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
TAG_QUOTA, VERSION_QUOTA, ATTACHED_QUOTA, KEY_QUOTA = 50, 5, 10, 2


def _set_clock(server: RoleportServer, instant: datetime) -> None:
    request = AWSRequest(
        method="POST",
        url=f"{server.endpoint_url}/_roleport/clock",
        data=json.dumps({"set": instant.isoformat()}).encode(),
    )
    SigV4Auth(Credentials(ROOT_KEY, ROOT_SECRET), "roleport", "us-east-1").add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=prepared.body, method="POST", headers=dict(prepared.headers))
    with urllib.request.urlopen(raw, timeout=10) as response:
        assert response.status == 200


def _start_two(data: Path, url: str) -> Iterator[list[RoleportServer]]:
    flags = {"clock": "controlled", "state_transition_seconds": 0}
    servers: list[RoleportServer] = []
    try:
        for index in range(2):
            servers.append(start_server(data / f"data{index}", database_url=url, **flags))
        instant = datetime.now(UTC).replace(microsecond=0)
        for server in servers:
            _set_clock(server, instant)
        yield servers
    finally:
        for server in servers:
            server.stop()


@contextmanager
def _new_store(store: str, data: Path) -> Iterator[str]:
    """The URL of a new SQLite file or PostgreSQL database (dropped afterwards)."""
    if store == "sqlite":
        yield f"sqlite:///{data / 'shared.db'}"
        return
    databases = postgres_database()
    try:
        yield next(databases)
    finally:
        databases.close()  # drops it


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RoleportServer]]:
    """Two server processes on one store."""
    data = tmp_path_factory.mktemp(f"races-{request.param}")
    with _new_store(request.param, data) as url:
        yield from _start_two(data, url)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_two_servers_starting_together_on_a_new_store_both_start(tmp_path: Path, store: str) -> None:
    """Both make the schema, seed AWS's managed policies and count the account's entities at once."""
    with _new_store(store, tmp_path) as url:
        servers = [
            RoleportServer(
                data_dir=tmp_path / f"data{index}",
                log_file=tmp_path / f"data{index}.log",
                access_key=ROOT_KEY,
                secret_key=ROOT_SECRET,
                database_url=url,
            )
            for index in range(2)
        ]
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                started = list(pool.map(lambda server: server.start().health()["status"], servers))
            assert started == ["ok", "ok"]
            listed = [server.client("iam").list_policies(Scope="AWS", MaxItems=1000)["Policies"] for server in servers]
            assert listed[0] == listed[1] and listed[0]
        finally:
            for server in servers:
                server.stop()


class Clients:
    """Several clients per service on each server, so calls go out on many connections to both processes."""

    def __init__(self, servers: list[RoleportServer]) -> None:
        per_server = WORKERS // len(servers)
        self._made = {
            service: [server.client(service) for _ in range(per_server) for server in servers]
            for service in ("iam", "ec2")
        }

    def __call__(self, service: str, index: int = 0) -> Any:
        found = self._made[service]
        return found[index % len(found)]


@pytest.fixture(scope="module")
def clients(servers: list[RoleportServer]) -> Clients:
    return Clients(servers)


def outcome(call: Callable[[], Any]) -> str:
    """ "ok", the AWS error code, or "5xx <code>" for a server failure."""
    try:
        call()
        return "ok"
    except ClientError as error:
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        code = error.response["Error"]["Code"]
        return f"5xx {code}" if status >= 500 else code


def race(calls: list[Callable[[], Any]]) -> Counter[str]:
    """Every call at once (as near as WORKERS threads allow), counted by outcome."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return Counter(pool.map(outcome, calls))


def only(outcomes: Counter[str], *allowed: str) -> None:
    assert set(outcomes) <= {"ok", *allowed}, outcomes


# ---------------------------------------------------------------------------------------------- tags


class Taggable:
    """Create, tag and list the tags of one kind of IAM resource, by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def create(self, iam: Any, name: str) -> None:
        if self.kind == "role":
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=EC2_TRUST)
        elif self.kind == "user":
            iam.create_user(UserName=name)
        else:
            iam.create_instance_profile(InstanceProfileName=name)

    def tag(self, iam: Any, name: str, tags: list[dict[str, str]]) -> Callable[[], Any]:
        if self.kind == "role":
            return lambda: iam.tag_role(RoleName=name, Tags=tags)
        if self.kind == "user":
            return lambda: iam.tag_user(UserName=name, Tags=tags)
        return lambda: iam.tag_instance_profile(InstanceProfileName=name, Tags=tags)

    def tags(self, iam: Any, name: str) -> list[dict[str, str]]:
        if self.kind == "role":
            return list(iam.list_role_tags(RoleName=name)["Tags"])
        if self.kind == "user":
            return list(iam.list_user_tags(UserName=name)["Tags"])
        return list(iam.list_instance_profile_tags(InstanceProfileName=name)["Tags"])


KINDS = ["role", "user", "instance-profile"]


@pytest.mark.parametrize("kind", KINDS)
def test_distinct_tags_from_many_callers_stop_at_the_quota(clients: Clients, name: Any, kind: str) -> None:
    taggable, owner = Taggable(kind), name(f"tags-{kind}")
    taggable.create(clients("iam"), owner)
    calls = [taggable.tag(clients("iam", i), owner, [{"Key": f"k{i:02}", "Value": "v"}]) for i in range(TAG_QUOTA + 16)]
    outcomes = race(calls)
    only(outcomes, "LimitExceeded")
    assert outcomes == Counter({"ok": TAG_QUOTA, "LimitExceeded": 16})
    assert len(taggable.tags(clients("iam"), owner)) == TAG_QUOTA


@pytest.mark.parametrize("kind", KINDS)
def test_one_tag_key_from_many_callers_keeps_one_tag(clients: Clients, name: Any, kind: str) -> None:
    taggable, owner = Taggable(kind), name(f"key-{kind}")
    taggable.create(clients("iam"), owner)
    # IAM tag keys ignore case, so "Env" and "ENV" are the same tag.
    keys = ["env", "Env", "ENV"]
    calls = [taggable.tag(clients("iam", i), owner, [{"Key": keys[i % 3], "Value": f"v{i}"}]) for i in range(24)]
    assert race(calls) == Counter({"ok": 24})
    [tag] = taggable.tags(clients("iam"), owner)
    assert tag["Key"] in keys and tag["Value"].startswith("v")


def test_tags_at_the_quota_overwrite_but_never_add(clients: Clients, name: Any) -> None:
    iam, role = clients("iam"), name("full")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=EC2_TRUST)
    iam.tag_role(RoleName=role, Tags=[{"Key": f"k{i:02}", "Value": "old"} for i in range(TAG_QUOTA)])
    same = [taggable_call(clients("iam", i), role, f"K{i % TAG_QUOTA:02}") for i in range(16)]
    new = [taggable_call(clients("iam", i), role, f"new{i}") for i in range(16)]
    outcomes = race([call for pair in zip(same, new, strict=True) for call in pair])
    assert outcomes == Counter({"ok": 16, "LimitExceeded": 16})
    assert len(iam.list_role_tags(RoleName=role)["Tags"]) == TAG_QUOTA


def taggable_call(iam: Any, role: str, key: str) -> Callable[[], Any]:
    return lambda: iam.tag_role(RoleName=role, Tags=[{"Key": key, "Value": "new"}])


# ---------------------------------------------------------------------------------------------- policies


def _principal(iam: Any, kind: str, owner: str) -> dict[str, str]:
    if kind == "role":
        iam.create_role(RoleName=owner, AssumeRolePolicyDocument=EC2_TRUST)
        return {"RoleName": owner}
    iam.create_user(UserName=owner)
    return {"UserName": owner}


@pytest.mark.parametrize("kind", ["role", "user"])
def test_one_inline_policy_name_from_many_callers_is_one_policy(clients: Clients, name: Any, kind: str) -> None:
    owner = name(f"inline-{kind}")
    who = _principal(clients("iam"), kind, owner)

    def put(i: int) -> Callable[[], Any]:
        iam = clients("iam", i)
        document = json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": f"s3:Get{i}", "Resource": "*"}]}
        )
        put_policy = iam.put_role_policy if kind == "role" else iam.put_user_policy
        return lambda: put_policy(**who, PolicyName="same", PolicyDocument=document)

    assert race([put(i) for i in range(24)]) == Counter({"ok": 24})
    listed = clients("iam").list_role_policies if kind == "role" else clients("iam").list_user_policies
    assert listed(**who)["PolicyNames"] == ["same"]


@pytest.mark.parametrize("kind", ["role", "user"])
def test_attached_policies_from_many_callers_stop_at_the_quota(clients: Clients, name: Any, kind: str) -> None:
    iam, owner = clients("iam"), name(f"attach-{kind}")
    who = _principal(iam, kind, owner)
    arns = [iam.create_policy(PolicyName=name(f"p{i}"), PolicyDocument=DOCUMENT)["Policy"]["Arn"] for i in range(14)]

    def attach(i: int) -> Callable[[], Any]:
        client = clients("iam", i)
        attach_policy = client.attach_role_policy if kind == "role" else client.attach_user_policy
        return lambda: attach_policy(**who, PolicyArn=arns[i % len(arns)])

    outcomes = race([attach(i) for i in range(2 * len(arns))])  # each policy twice: the second attach is a no-op
    assert outcomes == Counter({"ok": 2 * ATTACHED_QUOTA, "LimitExceeded": 2 * (len(arns) - ATTACHED_QUOTA)})
    listed = iam.list_attached_role_policies if kind == "role" else iam.list_attached_user_policies
    assert len(listed(**who)["AttachedPolicies"]) == ATTACHED_QUOTA


def test_policy_versions_from_many_callers_stop_at_five(clients: Clients, name: Any) -> None:
    iam = clients("iam")
    arn = iam.create_policy(PolicyName=name("versions"), PolicyDocument=DOCUMENT)["Policy"]["Arn"]

    def create(i: int) -> Callable[[], Any]:
        client = clients("iam", i)
        return lambda: client.create_policy_version(PolicyArn=arn, PolicyDocument=DOCUMENT, SetAsDefault=i % 2 == 0)

    outcomes = race([create(i) for i in range(16)])
    assert outcomes == Counter({"ok": VERSION_QUOTA - 1, "LimitExceeded": 17 - VERSION_QUOTA})
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert sorted(v["VersionId"] for v in versions) == [f"v{n}" for n in range(1, VERSION_QUOTA + 1)]
    [default] = [v["VersionId"] for v in versions if v["IsDefaultVersion"]]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == default
    assert iam.get_policy_version(PolicyArn=arn, VersionId=default)["PolicyVersion"]["Document"]


def test_policy_version_changes_and_delete_policy_race_cleanly(clients: Clients, name: Any) -> None:
    iam = clients("iam")
    arn = iam.create_policy(PolicyName=name("churn"), PolicyDocument=DOCUMENT)["Policy"]["Arn"]
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=DOCUMENT)  # v2
    calls: list[Callable[[], Any]] = []
    for i in range(6):
        client = clients("iam", i)
        calls.append(lambda client=client: client.set_default_policy_version(PolicyArn=arn, VersionId="v2"))
        calls.append(lambda client=client: client.delete_policy_version(PolicyArn=arn, VersionId="v2"))
        calls.append(lambda client=client: client.delete_policy_version(PolicyArn=arn, VersionId="v1"))
    outcomes = race(calls)
    only(outcomes, "DeleteConflict", "NoSuchEntity")
    policy = iam.get_policy(PolicyArn=arn)["Policy"]  # the default version always exists
    iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
    # Deleting the policy while roles attach it: either the policy goes and the attaches find nothing, or an attach
    # lands first and the delete is refused.
    roles = [name(f"holder{i}") for i in range(4)]
    for role in roles:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=EC2_TRUST)
    for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
        if not version["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    calls = [lambda: iam.delete_policy(PolicyArn=arn)]
    for i, role in enumerate(roles):
        client = clients("iam", i + 1)
        calls.append(lambda client=client, role=role: client.attach_role_policy(RoleName=role, PolicyArn=arn))
    outcomes = race(calls)
    only(outcomes, "DeleteConflict", "NoSuchEntity")
    attached = sum(len(iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]) for role in roles)
    if attached:
        assert outcomes == Counter({"ok": attached, "DeleteConflict": 1})
        iam.get_policy(PolicyArn=arn)
    else:
        assert outcomes == Counter({"ok": 1, "NoSuchEntity": len(roles)})


# ---------------------------------------------------------------------------------------------- keys and profiles


def test_access_keys_from_many_callers_stop_at_two(clients: Clients, name: Any) -> None:
    iam, user = clients("iam"), name("keys")
    iam.create_user(UserName=user)
    calls = [lambda i=i: clients("iam", i).create_access_key(UserName=user) for i in range(10)]
    assert race(calls) == Counter({"ok": KEY_QUOTA, "LimitExceeded": 10 - KEY_QUOTA})
    assert len(iam.list_access_keys(UserName=user)["AccessKeyMetadata"]) == KEY_QUOTA


def test_one_role_per_instance_profile_under_many_callers(clients: Clients, name: Any) -> None:
    iam, profile = clients("iam"), name("one-role")
    iam.create_instance_profile(InstanceProfileName=profile)
    roles = [name(f"r{i}") for i in range(8)]
    for role in roles:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=EC2_TRUST)
    calls = [
        lambda i=i: clients("iam", i).add_role_to_instance_profile(InstanceProfileName=profile, RoleName=roles[i])
        for i in range(len(roles))
    ]
    assert race(calls) == Counter({"ok": 1, "LimitExceeded": len(roles) - 1})
    assert len(iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]) == 1


def test_deleting_a_role_while_others_change_it(clients: Clients, name: Any) -> None:
    iam = clients("iam")
    arn = iam.create_policy(PolicyName=name("held"), PolicyDocument=DOCUMENT)["Policy"]["Arn"]
    for turn in range(4):
        role, profile = name(f"doomed{turn}"), name(f"home{turn}")
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=EC2_TRUST)
        iam.create_instance_profile(InstanceProfileName=profile)
        only(
            race(_role_churn([clients("iam", i) for i in range(6)], role, profile, arn)),
            "DeleteConflict",
            "NoSuchEntity",
        )


def _role_churn(c: list[Any], role: str, profile: str, arn: str) -> list[Callable[[], Any]]:
    return [
        lambda: c[0].delete_role(RoleName=role),
        lambda: c[1].tag_role(RoleName=role, Tags=[{"Key": "k", "Value": "v"}]),
        lambda: c[2].put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=DOCUMENT),
        lambda: c[3].attach_role_policy(RoleName=role, PolicyArn=arn),
        lambda: c[4].add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role),
        lambda: c[5].delete_instance_profile(InstanceProfileName=profile),
    ]


# ---------------------------------------------------------------------------------------------- associations


def test_replace_and_disassociate_races_have_one_winner(clients: Clients, name: Any) -> None:
    iam, ec2 = clients("iam"), clients("ec2")
    for profile in ("a", "b"):
        iam.create_instance_profile(InstanceProfileName=name(profile))
    for _ in range(3):
        launched = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, IamInstanceProfile={"Name": name("a")})[
            "Instances"
        ][0]
        instance_id = launched["InstanceId"]
        filters = [{"Name": "instance-id", "Values": [instance_id]}]
        [old] = ec2.describe_iam_instance_profile_associations(Filters=filters)["IamInstanceProfileAssociations"]
        calls = _replace_or_disassociate(clients, old["AssociationId"], {"Name": name("b")})
        # The states settle at once and both clocks stand still, so the loser finds the old association already
        # disassociated, on either store: the answer a call made after the winner gets.
        assert race(calls) == Counter({"ok": 1, "InvalidAssociationID.NotFound": 11})
        active = ec2.describe_iam_instance_profile_associations(Filters=filters)["IamInstanceProfileAssociations"]
        assert len(active) <= 1 and all(a["AssociationId"] != old["AssociationId"] for a in active)


def _replace_or_disassociate(clients: Clients, association_id: str, spec: dict[str, str]) -> list[Callable[[], Any]]:
    calls: list[Callable[[], Any]] = []
    for i in range(12):
        ec2 = clients("ec2", i)
        if i % 4 == 3:
            calls.append(lambda ec2=ec2: ec2.disassociate_iam_instance_profile(AssociationId=association_id))
        else:
            calls.append(
                lambda ec2=ec2: ec2.replace_iam_instance_profile_association(
                    AssociationId=association_id, IamInstanceProfile=spec
                )
            )
    return calls
