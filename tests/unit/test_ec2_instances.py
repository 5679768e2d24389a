"""The pure parts of the EC2 instance modules: launch counts, architectures, names, and when instances vanish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from roleport.config import Settings
from roleport.errors import AwsError
from roleport.services import ec2_instance_filters, ec2_instances, ec2_lifecycle

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def ctx(delay: float = 0.2, region: str = "us-east-1") -> Any:
    return SimpleNamespace(now=NOW, settings=Settings(state_transition_seconds=delay, region=region))


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [
        (0, 1, "Minimum instance count must be greater than zero"),
        (1, 0, "Maximum instance count must be greater than zero"),
        (3, 2, "Maximum instance count must not be smaller than minimum instance count"),
    ],
)
def test_bad_counts_are_invalid_parameter_value(low: int, high: int, message: str) -> None:
    with pytest.raises(AwsError) as caught:
        ec2_instances._count({"MinCount": low, "MaxCount": high})
    assert (caught.value.code, caught.value.message) == ("InvalidParameterValue", message)


def test_launch_gives_max_count_up_to_the_limit() -> None:
    assert ec2_instances._count({"MinCount": 1, "MaxCount": 7}) == 7
    assert ec2_instances._count({"MinCount": 1, "MaxCount": 5000}) == ec2_instances.INSTANCE_LIMIT


def test_min_count_above_the_limit_is_instance_limit_exceeded() -> None:
    with pytest.raises(AwsError) as caught:
        ec2_instances._count({"MinCount": 1001, "MaxCount": 1001})
    assert caught.value.code == "InstanceLimitExceeded"
    assert caught.value.message.startswith("You have requested more instances (1001) than your current instance limit")


@pytest.mark.parametrize(
    ("instance_type", "architecture"),
    [
        ("t3.micro", "x86_64"),
        ("m1.small", "x86_64"),
        ("g4dn.xlarge", "x86_64"),
        ("t4g.nano", "arm64"),
        ("m6gd.large", "arm64"),
        ("c7gn.medium", "arm64"),
        ("a1.large", "arm64"),
        ("g5g.xlarge", "arm64"),
    ],
)
def test_architecture_follows_the_instance_family(instance_type: str, architecture: str) -> None:
    assert ec2_instances._architecture(instance_type) == architecture


def test_private_dns_name_depends_on_region() -> None:
    assert ec2_instances._private_dns(ctx(), "172.31.5.9") == "ip-172-31-5-9.ec2.internal"
    assert ec2_instances._private_dns(ctx(region="eu-west-1"), "10.0.0.1") == "ip-10-0-0-1.eu-west-1.compute.internal"


def test_hop_limit_outside_1_to_64_is_refused() -> None:
    for hops in (0, 65):
        with pytest.raises(AwsError) as caught:
            ec2_instances.metadata_options({"HttpPutResponseHopLimit": hops}, ec2_instances.METADATA_DEFAULTS)
        assert caught.value.code == "InvalidParameterValue"
    assert ec2_instances.metadata_options({"HttpTokens": "required"}, ec2_instances.METADATA_DEFAULTS) == {
        **ec2_instances.METADATA_DEFAULTS,
        "HttpTokens": "required",
    }


def test_terminated_instances_vanish_an_hour_after_terminating() -> None:
    # shutting-down entered at T settles to terminated at T + delay, and is hidden from T + delay + 1 hour.
    assert ec2_lifecycle.hidden_before(ctx(delay=0.2)) == NOW - timedelta(seconds=0.2) - timedelta(hours=1)
    assert ec2_lifecycle.cutoff(ctx(delay=0)) == NOW


def test_launch_tags_keep_the_last_value_per_key_and_skip_other_resources() -> None:
    specs = [
        {"ResourceType": "instance", "Tags": [{"Key": "b", "Value": "1"}, {"Key": "a", "Value": "2"}]},
        {"ResourceType": "volume", "Tags": [{"Key": "v", "Value": "x"}]},
    ]
    assert ec2_instances._launch_tags({"TagSpecifications": specs}) == [
        {"Key": "a", "Value": "2"},
        {"Key": "b", "Value": "1"},
    ]


def test_launch_tags_on_an_untaggable_resource_are_refused() -> None:
    with pytest.raises(AwsError) as caught:
        ec2_instances._launch_tags({"TagSpecifications": [{"ResourceType": "vpc", "Tags": []}]})
    assert caught.value.message == "'vpc' is not a valid taggable resource type for this operation."


def test_aws_filter_names_come_from_the_model() -> None:
    names = ec2_instance_filters.aws_filter_names()
    assert {"instance-id", "iam-instance-profile.arn", "vpc-id", "tag-key", "tag-value"} <= names
    assert "public-ip" not in names
