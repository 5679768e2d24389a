"""STS AssumeRole and temporary credentials through boto3."""

from __future__ import annotations

from typing import Any

from roleport.testing import RoleportServer
from tests.conftest import EC2_TRUST
from tests.e2e.helpers import error_of
from tests.e2e.principals import allow, client_as, policy, session_credentials, user_with_key

ACCOUNT = "123456789012"


def trust_for(principal: Any) -> str:
    return policy({"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"})


def test_assume_role_named_directly_in_trust(server: RoleportServer, iam: Any, name: Any) -> None:
    caller = name("direct")
    creds = user_with_key(server, iam, caller)  # no identity policy needed when the trust names the user
    role = iam.create_role(
        RoleName=name("target"), AssumeRolePolicyDocument=trust_for(f"arn:aws:iam::{ACCOUNT}:user/{caller}")
    )
    assumed = client_as(server, "sts", creds).assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName="s1")
    assert assumed["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert assumed["AssumedRoleUser"] == {
        "AssumedRoleId": f"{role['Role']['RoleId']}:s1",
        "Arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{name('target')}/s1",
    }
    identity = client_as(server, "sts", session_credentials(assumed)).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{name('target')}/s1"
    assert identity["UserId"] == f"{role['Role']['RoleId']}:s1"


def test_account_trust_needs_identity_permission(server: RoleportServer, iam: Any, name: Any) -> None:
    role = iam.create_role(RoleName=name("acct"), AssumeRolePolicyDocument=trust_for(ACCOUNT))["Role"]
    without = user_with_key(server, iam, name("without"))
    error = error_of(client_as(server, "sts", without).assume_role, RoleArn=role["Arn"], RoleSessionName="x1")
    assert error["Code"] == "AccessDenied"
    with_permission = user_with_key(server, iam, name("with"), allow("sts:AssumeRole", role["Arn"]))
    client_as(server, "sts", with_permission).assume_role(RoleArn=role["Arn"], RoleSessionName="x2")


def test_trust_not_naming_caller_is_access_denied(server: RoleportServer, iam: Any, name: Any) -> None:
    role = iam.create_role(RoleName=name("ec2only"), AssumeRolePolicyDocument=EC2_TRUST)["Role"]
    creds = user_with_key(server, iam, name("outsider"), allow("sts:AssumeRole"))
    error = error_of(client_as(server, "sts", creds).assume_role, RoleArn=role["Arn"], RoleSessionName="nope")
    assert error == {
        "Code": "AccessDenied",
        "Message": f"User: arn:aws:iam::{ACCOUNT}:user/{name('outsider')} is not authorized to perform: "
        f"sts:AssumeRole on resource: {role['Arn']}",
        "Status": 403,
    }


def test_missing_role_is_access_denied_not_not_found(server: RoleportServer, iam: Any, name: Any) -> None:
    creds = user_with_key(server, iam, name("seeker"), allow("sts:AssumeRole"))
    arn = f"arn:aws:iam::{ACCOUNT}:role/{name('ghost')}"
    assert error_of(client_as(server, "sts", creds).assume_role, RoleArn=arn, RoleSessionName="gh")["Code"] == (
        "AccessDenied"
    )


def test_root_may_not_assume_roles(sts: Any, iam: Any, name: Any) -> None:
    role = iam.create_role(RoleName=name("rootless"), AssumeRolePolicyDocument=trust_for(ACCOUNT))["Role"]
    assert error_of(sts.assume_role, RoleArn=role["Arn"], RoleSessionName="rt")["Message"] == (
        "Roles may not be assumed by root accounts."
    )


def test_duration_beyond_max_session_duration_is_validation_error(server: RoleportServer, iam: Any, name: Any) -> None:
    caller = name("long")
    creds = user_with_key(server, iam, caller)
    role = iam.create_role(
        RoleName=name("short"), AssumeRolePolicyDocument=trust_for(f"arn:aws:iam::{ACCOUNT}:user/{caller}")
    )
    error = error_of(
        client_as(server, "sts", creds).assume_role,
        RoleArn=role["Role"]["Arn"],
        RoleSessionName="du",
        DurationSeconds=7200,
    )
    assert error == {
        "Code": "ValidationError",
        "Message": "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        "Status": 400,
    }


def test_session_policy_narrows_the_role(server: RoleportServer, iam: Any, name: Any) -> None:
    caller = name("narrow")
    creds = user_with_key(server, iam, caller)
    role = iam.create_role(
        RoleName=name("wide"), AssumeRolePolicyDocument=trust_for(f"arn:aws:iam::{ACCOUNT}:user/{caller}")
    )
    iam.attach_role_policy(RoleName=name("wide"), PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    assumed = client_as(server, "sts", creds).assume_role(
        RoleArn=role["Role"]["Arn"], RoleSessionName="nw", Policy=policy(allow("iam:ListRoles"))
    )
    assert assumed["PackedPolicySize"] > 0
    session_iam = client_as(server, "iam", session_credentials(assumed))
    session_iam.list_roles()
    error = error_of(session_iam.get_role, RoleName=name("wide"))
    assert error["Message"].endswith("because no session policy allows the iam:GetRole action")


def test_session_key_without_or_with_wrong_token_is_refused(server: RoleportServer, iam: Any, name: Any) -> None:
    caller = name("tokens")
    creds = user_with_key(server, iam, caller)
    role = iam.create_role(
        RoleName=name("tk"), AssumeRolePolicyDocument=trust_for(f"arn:aws:iam::{ACCOUNT}:user/{caller}")
    )
    session = session_credentials(
        client_as(server, "sts", creds).assume_role(RoleArn=role["Role"]["Arn"], RoleSessionName="tk")
    )
    no_token = {"key": session["key"], "secret": session["secret"]}
    assert error_of(client_as(server, "sts", no_token).get_caller_identity)["Code"] == "InvalidClientTokenId"
    wrong = {**session, "token": session["token"][:-4] + "AAAA"}
    assert error_of(client_as(server, "sts", wrong).get_caller_identity)["Code"] == "InvalidClientTokenId"


def test_role_chaining_is_limited_to_one_hour(server: RoleportServer, iam: Any, name: Any) -> None:
    caller = name("chain")
    creds = user_with_key(server, iam, caller)
    first = iam.create_role(
        RoleName=name("first"), AssumeRolePolicyDocument=trust_for(f"arn:aws:iam::{ACCOUNT}:user/{caller}")
    )
    second = iam.create_role(
        RoleName=name("second"), AssumeRolePolicyDocument=trust_for(first["Role"]["Arn"]), MaxSessionDuration=7200
    )
    session = session_credentials(
        client_as(server, "sts", creds).assume_role(RoleArn=first["Role"]["Arn"], RoleSessionName="c1")
    )
    chained = client_as(server, "sts", session)
    error = error_of(chained.assume_role, RoleArn=second["Role"]["Arn"], RoleSessionName="c2", DurationSeconds=7200)
    assert "1 hour session limit for roles assumed by role chaining" in error["Message"]
    assert chained.assume_role(RoleArn=second["Role"]["Arn"], RoleSessionName="c3")["AssumedRoleUser"]


def test_presigned_get_caller_identity_url(server: RoleportServer, iam: Any, name: Any) -> None:
    import urllib.request

    creds = user_with_key(server, iam, name("presign"))
    url = client_as(server, "sts", creds).generate_presigned_url("get_caller_identity", ExpiresIn=300, HttpMethod="GET")
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read().decode()
    assert f"<Arn>arn:aws:iam::{ACCOUNT}:user/{name('presign')}</Arn>" in body


def test_request_signed_twenty_minutes_ago_is_expired(server: RoleportServer, monkeypatch: Any) -> None:
    from datetime import UTC, datetime, timedelta

    import botocore.auth

    signed_at = (datetime.now(UTC) - timedelta(minutes=20)).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: signed_at)
    error = error_of(server.client("sts").get_caller_identity)
    assert (error["Code"], error["Status"]) == ("SignatureDoesNotMatch", 403)
    assert error["Message"].startswith(f"Signature expired: {signed_at.strftime('%Y%m%dT%H%M%SZ')} is now earlier than")


def test_instance_credentials_past_expiration_are_expired_token(make_server: Any, name: Any) -> None:
    import json
    import urllib.request

    server = make_server(clock="controlled", credential_lifetime_seconds=2, state_transition_seconds=0)
    iam, ec2 = server.client("iam"), server.client("ec2")
    iam.create_role(RoleName="short-lived", AssumeRolePolicyDocument=EC2_TRUST)
    iam.create_instance_profile(InstanceProfileName="short-lived")
    iam.add_role_to_instance_profile(InstanceProfileName="short-lived", RoleName="short-lived")
    launched = ec2.run_instances(
        ImageId="ami-0abcdef1234567890", MinCount=1, MaxCount=1, IamInstanceProfile={"Name": "short-lived"}
    )
    instance = launched["Instances"][0]["InstanceId"]
    url = f"{server.endpoint_url}/imds/{instance}/latest/meta-data/iam/security-credentials/short-lived"
    with urllib.request.urlopen(url, timeout=10) as response:
        document = json.loads(response.read())
    creds = {"key": document["AccessKeyId"], "secret": document["SecretAccessKey"], "token": document["Token"]}
    sts = client_as(server, "sts", creds)
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/short-lived/{instance}"
    server.advance(1.9)
    assert sts.get_caller_identity()["Account"] == ACCOUNT
    server.advance(0.6)
    assert error_of(sts.get_caller_identity) == {
        "Code": "ExpiredToken",
        "Message": "The security token included in the request is expired",
        "Status": 403,
    }
