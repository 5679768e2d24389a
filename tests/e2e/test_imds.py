"""The instance metadata service against the real server, with raw HTTP (urllib, no proxy) and a key-less boto3:
IMDSv1 and v2, tokens, metadata options, the meta-data tree, the iam/ documents and their failures, credential
rotation, and the dedicated per-instance listeners."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from roleport.testing import RoleportServer
from tests.conftest import EC2_TRUST, ROOT_KEY, ROOT_SECRET, start_server

AMI = "ami-0abcdef1234567890"
TOKEN_PATH = "latest/api/token"
CREDENTIALS = "latest/meta-data/iam/security-credentials/"
DOC_URL = (
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_iam-ec2.html#troubleshoot_iam-ec2_errors-info-doc"
)
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
LAMBDA_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
NOT_FOUND_PAGE = """<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>404 - Not Found</title>
 </head>
 <body>
  <h1>404 - Not Found</h1>
 </body>
</html>
"""
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def call(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=10) as response:
            return Answer(
                response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
            )
    except urllib.error.HTTPError as failure:
        with failure:
            return Answer(failure.code, {k.lower(): v for k, v in failure.headers.items()}, failure.read().decode())


def token(base: str, ttl: int = 60) -> str:
    answer = call(base + TOKEN_PATH, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
    assert answer.status == 200, answer
    return answer.body


def get(base: str, path: str, with_token: str | None = None) -> Answer:
    return call(base + path, headers={"X-aws-ec2-metadata-token": with_token} if with_token else {})


@dataclass
class Instance:
    id: str
    role: str | None
    profile: str | None
    base: str  # the path form on the main port, e.g. http://127.0.0.1:PORT/imds/i-…/


def launch(server: RoleportServer, *, trust: str | None = EC2_TRUST, profile: bool = True, **run: Any) -> Instance:
    """An instance launched with a new profile holding a new role (trust=None: a profile without a role)."""
    iam, ec2 = server.client("iam"), server.client("ec2")
    suffix = uuid.uuid4().hex[:10]
    role = profile_name = None
    if profile:
        profile_name = f"profile-{suffix}"
        iam.create_instance_profile(InstanceProfileName=profile_name)
        if trust is not None:
            role = f"role-{suffix}"
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
            iam.add_role_to_instance_profile(InstanceProfileName=profile_name, RoleName=role)
        run["IamInstanceProfile"] = {"Name": profile_name}
    instance_id = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, **run)["Instances"][0]["InstanceId"]
    return Instance(instance_id, role, profile_name, f"{server.endpoint_url}/imds/{instance_id}/")


def dedicated_endpoint(server: RoleportServer, instance_id: str, secret: str = ROOT_SECRET) -> Answer:
    """GET /_roleport/instances/{id}/metadata-endpoint, signed by the root key as `roleport exec` signs it."""
    url = f"{server.endpoint_url}/_roleport/instances/{instance_id}/metadata-endpoint"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(ROOT_KEY, secret), "roleport", "us-east-1").add_auth(request)
    return call(url, headers=dict(request.prepare().headers))


def options(server: RoleportServer, instance_id: str, **changes: str) -> None:
    server.client("ec2").modify_instance_metadata_options(InstanceId=instance_id, **changes)


@pytest.fixture(scope="module")
def imds(backend: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleportServer]:
    """A server whose passing states settle at once, so a launched instance is running on the next read."""
    data_dir = tmp_path_factory.mktemp("imds") / "data"
    running = start_server(data_dir, database_url=backend, state_transition_seconds=0)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def short_lived(backend: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleportServer]:
    """On the controlled clock, credentials live 4 s, so they are re-served for 2 s (half their life) and then
    replaced; metadata tokens expire when the test moves the clock past their TTL."""
    data_dir = tmp_path_factory.mktemp("imds-short") / "data"
    lifetimes = {"state_transition_seconds": 0, "credential_lifetime_seconds": 4}
    running = start_server(data_dir, database_url=backend, clock="controlled", **lifetimes)
    yield running
    running.stop()


@pytest.fixture
def instance(imds: RoleportServer) -> Instance:
    return launch(imds)


# --- IMDSv1 and v2 ------------------------------------------------------------------------------------------------


def test_v1_lists_the_categories_that_exist(instance: Instance) -> None:
    answer = get(instance.base, "latest/meta-data/")
    assert (answer.status, answer.headers["content-type"]) == (200, "text/plain")
    assert answer.body.split("\n") == [
        "ami-id",
        "ami-launch-index",
        "hostname",
        "iam/",
        "instance-id",
        "instance-life-cycle",
        "instance-type",
        "local-hostname",
        "local-ipv4",
        "mac",
        "placement/",
        "reservation-id",
    ]


def test_values_match_describe_instances(imds: RoleportServer, instance: Instance) -> None:
    described = imds.client("ec2").describe_instances(InstanceIds=[instance.id])["Reservations"][0]
    found = described["Instances"][0]
    expected = {
        "instance-id": instance.id,
        "instance-type": found["InstanceType"],
        "ami-id": AMI,
        "local-ipv4": found["PrivateIpAddress"],
        "local-hostname": found["PrivateDnsName"],
        "hostname": found["PrivateDnsName"],
        "reservation-id": described["ReservationId"],
        "placement/availability-zone": found["Placement"]["AvailabilityZone"],
        "placement/region": "us-east-1",
    }
    assert {path: get(instance.base, "latest/meta-data/" + path).body for path in expected} == expected
    assert re.fullmatch(r"0e(:[0-9a-f]{2}){5}", get(instance.base, "latest/meta-data/mac").body)


def test_token_put_answers_the_token_and_echoes_the_ttl(instance: Instance) -> None:
    answer = call(instance.base + TOKEN_PATH, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
    assert answer.status == 200
    assert answer.headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    assert len(answer.body) >= 40
    assert get(instance.base, "latest/meta-data/instance-id", answer.body).body == instance.id


def test_each_token_put_makes_a_new_token(instance: Instance) -> None:
    assert token(instance.base) != token(instance.base)


@pytest.mark.parametrize("ttl", ["1", "21600", " 60 "])
def test_token_ttl_within_bounds_is_accepted(instance: Instance, ttl: str) -> None:
    answer = call(instance.base + TOKEN_PATH, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": ttl})
    assert answer.status == 200


@pytest.mark.parametrize("ttl", [None, "", "0", "21601", "-5", "1.5", "abc", "9999999"])
def test_token_ttl_missing_or_invalid_is_400(instance: Instance, ttl: str | None) -> None:
    headers = {} if ttl is None else {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
    answer = call(instance.base + TOKEN_PATH, "PUT", headers)
    assert answer.status == 400
    assert "<title>400 - Bad Request</title>" in answer.body


def test_expired_token_is_401(short_lived: RoleportServer) -> None:
    instance = launch(short_lived)
    expiring = token(instance.base, ttl=1)
    assert get(instance.base, "latest/meta-data/instance-id", expiring).status == 200
    short_lived.advance(0.9)
    assert get(instance.base, "latest/meta-data/instance-id", expiring).status == 200
    short_lived.advance(0.2)
    answer = get(instance.base, "latest/meta-data/instance-id", expiring)
    assert answer.status == 401
    assert "<title>401 - Unauthorized</title>" in answer.body


def test_token_of_another_instance_is_401(imds: RoleportServer, instance: Instance) -> None:
    other = launch(imds, profile=False)
    assert get(instance.base, "latest/meta-data/instance-id", token(other.base)).status == 401


def test_made_up_token_is_401_even_when_tokens_are_optional(instance: Instance) -> None:
    assert get(instance.base, "latest/meta-data/instance-id", "AQAEAFakeTokenFakeTokenFakeToken==").status == 401


def test_token_put_with_x_forwarded_for_is_403(instance: Instance) -> None:
    headers = {"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "203.0.113.7"}
    answer = call(instance.base + TOKEN_PATH, "PUT", headers)
    assert answer.status == 403
    assert "<title>403 - Forbidden</title>" in answer.body


def test_get_on_the_token_path_is_405(instance: Instance) -> None:
    assert call(instance.base + TOKEN_PATH, headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}).status == 405


@pytest.mark.parametrize("path", ["latest/meta-data/", "2021-07-15/api/token", "latest/api/token/extra"])
def test_put_anywhere_but_the_token_path_is_403(instance: Instance, path: str) -> None:
    assert call(instance.base + path, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}).status == 403


def test_http_tokens_required_refuses_v1(imds: RoleportServer, instance: Instance) -> None:
    options(imds, instance.id, HttpTokens="required")
    answer = get(instance.base, "latest/meta-data/instance-id")
    assert answer.status == 401
    assert get(instance.base, "latest/meta-data/instance-id", token(instance.base)).body == instance.id


def test_http_endpoint_disabled_is_403(imds: RoleportServer, instance: Instance) -> None:
    issued = token(instance.base)
    options(imds, instance.id, HttpEndpoint="disabled")
    assert get(instance.base, "latest/meta-data/instance-id").status == 403
    assert get(instance.base, "latest/meta-data/instance-id", issued).status == 403
    assert call(instance.base + TOKEN_PATH, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}).status == 403
    options(imds, instance.id, HttpEndpoint="enabled")
    assert get(instance.base, "latest/meta-data/instance-id", issued).body == instance.id


def test_unknown_path_is_404_with_the_imds_page(instance: Instance) -> None:
    answer = get(instance.base, "latest/meta-data/no-such-thing")
    assert (answer.status, answer.headers["content-type"], answer.body) == (404, "text/html", NOT_FOUND_PAGE)
    assert get(instance.base, "2009-04-04/meta-data/instance-id").status == 404


def test_root_and_latest_list_what_is_below(instance: Instance) -> None:
    assert get(instance.base, "").body == "latest"
    assert get(instance.base, "latest/").body == "dynamic\nmeta-data"
    assert get(instance.base, "latest/dynamic/").body == "instance-identity/"
    assert get(instance.base, "latest/dynamic/instance-identity/").body == "document"


def test_instance_identity_document(imds: RoleportServer, instance: Instance) -> None:
    found = imds.client("ec2").describe_instances(InstanceIds=[instance.id])["Reservations"][0]["Instances"][0]
    answer = get(instance.base, "latest/dynamic/instance-identity/document")
    document = answer.json()
    assert list(document) == [
        "accountId",
        "architecture",
        "availabilityZone",
        "billingProducts",
        "devpayProductCodes",
        "marketplaceProductCodes",
        "imageId",
        "instanceId",
        "instanceType",
        "kernelId",
        "pendingTime",
        "privateIp",
        "ramdiskId",
        "region",
        "version",
    ]
    assert document["pendingTime"] == found["LaunchTime"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (document["accountId"], document["instanceId"], document["privateIp"], document["region"]) == (
        "123456789012",
        instance.id,
        found["PrivateIpAddress"],
        "us-east-1",
    )
    assert '  "billingProducts" : null,\n' in answer.body


def test_tags_are_served_only_when_enabled(imds: RoleportServer) -> None:
    tagged = launch(
        imds,
        profile=False,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "Env", "Value": "dev"}]}
        ],
    )
    assert get(tagged.base, "latest/meta-data/tags/instance/").status == 404
    assert "tags/" not in get(tagged.base, "latest/meta-data/").body.split("\n")
    options(imds, tagged.id, InstanceMetadataTags="enabled")
    assert "tags/" in get(tagged.base, "latest/meta-data/").body.split("\n")
    assert get(tagged.base, "latest/meta-data/tags/").body == "instance"
    assert get(tagged.base, "latest/meta-data/tags/instance").body == "Env\nName"
    assert get(tagged.base, "latest/meta-data/tags/instance/Name").body == "web-1"
    assert get(tagged.base, "latest/meta-data/tags/instance/Missing").status == 404
    options(imds, tagged.id, InstanceMetadataTags="disabled")
    assert get(tagged.base, "latest/meta-data/tags/instance/Name").status == 404


# --- iam/ -------------------------------------------------------------------------------------------------------


def test_no_profile_means_no_iam_category(imds: RoleportServer) -> None:
    bare = launch(imds, profile=False)
    assert "iam/" not in get(bare.base, "latest/meta-data/").body.split("\n")
    for path in ("latest/meta-data/iam/", "latest/meta-data/iam/info", CREDENTIALS):
        assert get(bare.base, path).status == 404, path


def test_iam_info_is_success_with_the_profile(imds: RoleportServer, instance: Instance) -> None:
    profile = imds.client("iam").get_instance_profile(InstanceProfileName=instance.profile)["InstanceProfile"]
    answer = get(instance.base, "latest/meta-data/iam/info")
    assert get(instance.base, "latest/meta-data/iam/").body == "info\nsecurity-credentials/"
    info = answer.json()
    assert list(info) == ["Code", "LastUpdated", "InstanceProfileArn", "InstanceProfileId"]
    assert (info["Code"], info["InstanceProfileArn"], info["InstanceProfileId"]) == (
        "Success",
        profile["Arn"],
        profile["InstanceProfileId"],
    )
    assert ISO.fullmatch(info["LastUpdated"])
    assert answer.body.startswith('{\n  "Code" : "Success",\n  "LastUpdated" : "')


def test_security_credentials_lists_the_role(instance: Instance) -> None:
    assert get(instance.base, CREDENTIALS).body == instance.role
    assert get(instance.base, CREDENTIALS.rstrip("/")).body == instance.role
    assert get(instance.base, CREDENTIALS + "SomeOtherRole").status == 404


def test_credentials_document(instance: Instance) -> None:
    answer = get(instance.base, CREDENTIALS + str(instance.role), token(instance.base))
    found = answer.json()
    assert list(found) == ["Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"]
    assert (found["Code"], found["Type"]) == ("Success", "AWS-HMAC")
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", found["AccessKeyId"])
    assert len(found["SecretAccessKey"]) == 40 and len(found["Token"]) > 300
    issued = datetime.strptime(found["LastUpdated"], "%Y-%m-%dT%H:%M:%SZ")
    expires = datetime.strptime(found["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
    assert expires - issued == timedelta(hours=6)
    assert answer.body.startswith('{\n  "Code" : "Success",\n')


def test_credentials_are_re_served_until_they_near_expiry(instance: Instance) -> None:
    first = get(instance.base, CREDENTIALS + str(instance.role)).json()
    again = get(instance.base, CREDENTIALS + str(instance.role), token(instance.base)).json()
    assert again == first


def test_concurrent_first_fetches_share_one_session(imds: RoleportServer) -> None:
    fresh = launch(imds)
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: get(fresh.base, CREDENTIALS + str(fresh.role)).json()["AccessKeyId"], range(16)))
    assert len(keys) == 1


def test_profile_without_role_says_so_in_info(imds: RoleportServer) -> None:
    empty = launch(imds, trust=None)
    info = get(empty.base, "latest/meta-data/iam/info").json()
    assert (info["Code"], info["Message"]) == ("Success", "Instance Profile does not contain a role.")
    assert get(empty.base, "latest/meta-data/iam/").body == "info"
    assert get(empty.base, CREDENTIALS).status == 404


def test_role_that_does_not_trust_ec2_is_assume_role_unauthorized_access(imds: RoleportServer) -> None:
    untrusted = launch(imds, trust=LAMBDA_TRUST)
    assert get(untrusted.base, CREDENTIALS).body == untrusted.role
    answer = get(untrusted.base, CREDENTIALS + str(untrusted.role))
    assert answer.status == 200
    found = answer.json()
    assert list(found) == ["Code", "Message", "LastUpdated"]
    assert found["Code"] == "AssumeRoleUnauthorizedAccess"
    assert found["Message"] == f"EC2 cannot assume the role {untrusted.role}.  Please see documentation at {DOC_URL}."


def test_trust_fixed_later_serves_credentials(imds: RoleportServer) -> None:
    untrusted = launch(imds, trust=LAMBDA_TRUST)
    imds.client("iam").update_assume_role_policy(RoleName=untrusted.role, PolicyDocument=EC2_TRUST)
    assert get(untrusted.base, CREDENTIALS + str(untrusted.role)).json()["Code"] == "Success"


def test_deleted_profile_is_instance_profile_not_found(imds: RoleportServer, instance: Instance) -> None:
    iam = imds.client("iam")
    profile_id = iam.get_instance_profile(InstanceProfileName=instance.profile)["InstanceProfile"]["InstanceProfileId"]
    iam.remove_role_from_instance_profile(InstanceProfileName=instance.profile, RoleName=instance.role)
    iam.delete_instance_profile(InstanceProfileName=instance.profile)
    found = get(instance.base, "latest/meta-data/iam/info").json()
    assert found["Code"] == "InstanceProfileNotFound"
    assert (
        found["Message"]
        == f"Instance Profile with Id {profile_id} cannot be found.  Please see documentation at {DOC_URL}."
    )
    assert get(instance.base, CREDENTIALS).status == 404


def test_replaced_association_serves_the_new_role(imds: RoleportServer, instance: Instance) -> None:
    before = get(instance.base, CREDENTIALS + str(instance.role)).json()
    other = launch(imds, profile=True)  # only for its profile and role
    ec2 = imds.client("ec2")
    [association] = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance.id]}]
    )["IamInstanceProfileAssociations"]
    ec2.replace_iam_instance_profile_association(
        AssociationId=association["AssociationId"], IamInstanceProfile={"Name": str(other.profile)}
    )
    assert get(instance.base, CREDENTIALS).body == other.role
    after = get(instance.base, CREDENTIALS + str(other.role)).json()
    assert after["AccessKeyId"] != before["AccessKeyId"]
    assert get(instance.base, CREDENTIALS + str(instance.role)).status == 404


def test_role_swapped_in_the_profile_serves_the_new_role(imds: RoleportServer, instance: Instance) -> None:
    iam = imds.client("iam")
    before = get(instance.base, CREDENTIALS + str(instance.role)).json()
    swapped = f"swapped-{uuid.uuid4().hex[:10]}"
    iam.create_role(RoleName=swapped, AssumeRolePolicyDocument=EC2_TRUST)
    iam.remove_role_from_instance_profile(InstanceProfileName=instance.profile, RoleName=instance.role)
    iam.add_role_to_instance_profile(InstanceProfileName=instance.profile, RoleName=swapped)
    after = get(instance.base, CREDENTIALS + swapped).json()
    assert after["Code"] == "Success" and after["AccessKeyId"] != before["AccessKeyId"]


def test_credentials_are_replaced_once_they_near_expiry(short_lived: RoleportServer) -> None:
    fresh = launch(short_lived)
    first = get(fresh.base, CREDENTIALS + str(fresh.role)).json()
    issued = datetime.strptime(first["LastUpdated"], "%Y-%m-%dT%H:%M:%SZ")
    lifetime = datetime.strptime(first["Expiration"], "%Y-%m-%dT%H:%M:%SZ") - issued
    assert timedelta(seconds=3) <= lifetime <= timedelta(seconds=5)  # 4 s, seen at whole seconds
    short_lived.advance(1.9)  # still more than half the lifetime left: re-served
    assert get(fresh.base, CREDENTIALS + str(fresh.role)).json()["AccessKeyId"] == first["AccessKeyId"]
    short_lived.advance(0.3)  # within half the lifetime of expiry: rotated
    later = get(fresh.base, CREDENTIALS + str(fresh.role)).json()
    assert later["AccessKeyId"] != first["AccessKeyId"]
    assert later["Expiration"] > first["Expiration"]


# --- instance states and the dedicated listener ---------------------------------------------------------------


def test_stopped_instance_has_no_metadata_service(imds: RoleportServer, instance: Instance) -> None:
    imds.client("ec2").stop_instances(InstanceIds=[instance.id])
    assert get(instance.base, "latest/meta-data/instance-id").status == 404
    dedicated = dedicated_endpoint(imds, instance.id).json()["Endpoint"]
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        _OPENER.open(dedicated + "latest/meta-data/instance-id", timeout=10)


def test_unknown_instance_on_the_path_form_is_404(imds: RoleportServer) -> None:
    assert call(f"{imds.endpoint_url}/imds/i-0123456789abcdef0/latest/meta-data/").status == 404


def test_dedicated_listener_answers_for_its_instance(imds: RoleportServer, instance: Instance) -> None:
    endpoint = dedicated_endpoint(imds, instance.id)
    assert endpoint.status == 200
    found = endpoint.json()
    assert found["InstanceId"] == instance.id
    assert found["PathEndpoint"] == instance.base
    dedicated = found["Endpoint"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", dedicated) and not dedicated.startswith(imds.endpoint_url)
    answer = call(dedicated + TOKEN_PATH, "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert answer.headers["server"] == "EC2ws"
    assert get(dedicated, "latest/meta-data/instance-id", answer.body).body == instance.id
    path_form = get(instance.base, CREDENTIALS + str(instance.role)).json()
    assert get(dedicated, CREDENTIALS + str(instance.role), answer.body).json() == path_form
    assert dedicated_endpoint(imds, instance.id).json()["Endpoint"] == dedicated  # kept, not reopened


def test_dedicated_listener_keeps_connections_alive(imds: RoleportServer, instance: Instance) -> None:
    dedicated = dedicated_endpoint(imds, instance.id).json()["Endpoint"]
    host, port = dedicated.removeprefix("http://").rstrip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for _ in range(3):
            connection.request("GET", "/latest/meta-data/instance-id")
            response = connection.getresponse()
            assert (response.status, response.read().decode()) == (200, instance.id)
        connection.request("HEAD", "/latest/meta-data/instance-id")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"")
    finally:
        connection.close()


def test_metadata_endpoint_needs_the_root_signature(imds: RoleportServer, instance: Instance) -> None:
    url = f"{imds.endpoint_url}/_roleport/instances/{instance.id}/metadata-endpoint"
    unsigned = call(url)
    assert (unsigned.status, unsigned.json()["Error"]["Code"]) == (403, "MissingAuthenticationToken")
    wrong = dedicated_endpoint(imds, instance.id, secret="not-the-secret")
    assert (wrong.status, wrong.json()["Error"]["Code"]) == (403, "SignatureDoesNotMatch")
    missing = dedicated_endpoint(imds, "i-0123456789abcdef0")
    assert (missing.status, missing.json()["Error"]["Code"]) == (404, "InvalidInstanceID.NotFound")


# --- a key-less boto3 -----------------------------------------------------------------------------------------------

_WHO_AM_I = """
import boto3
session = boto3.Session()
credentials = session.get_credentials()
print(credentials.method)
print(session.client("sts").get_caller_identity()["Arn"])
"""


def instance_env(server: RoleportServer, metadata_endpoint: str) -> dict[str, str]:
    """The environment of code on the instance: no keys, no profiles, no config files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=server.endpoint_url,
        AWS_EC2_METADATA_SERVICE_ENDPOINT=metadata_endpoint,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


def test_boto3_without_keys_finds_the_instance_role(imds: RoleportServer, instance: Instance) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WHO_AM_I],
        env=instance_env(imds, instance.base),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [
        "iam-role",
        f"arn:aws:sts::123456789012:assumed-role/{instance.role}/{instance.id}",
    ]


def test_boto3_with_tokens_required_uses_imdsv2(imds: RoleportServer, instance: Instance) -> None:
    options(imds, instance.id, HttpTokens="required")
    dedicated = dedicated_endpoint(imds, instance.id).json()["Endpoint"]
    done = subprocess.run(
        [sys.executable, "-c", _WHO_AM_I], env=instance_env(imds, dedicated), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[1] == f"arn:aws:sts::123456789012:assumed-role/{instance.role}/{instance.id}"
