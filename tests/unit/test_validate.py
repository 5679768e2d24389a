"""protocol.validate against the real botocore models; expected texts follow the AWS responses cited beside them."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.model import ServiceModel, ShapeResolver

from roleport.errors import AwsError
from roleport.protocol.java_regex import compile_java_pattern
from roleport.protocol.validate import validate

TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
)
NAME_PATTERN = r"[\w+=,.@-]+"
TAG_KEY_PATTERN = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+"
LATIN1_PATTERN = r"[\u0009\u000A\u000D\u0020-\u00FF]+"


@pytest.fixture(scope="module")
def models() -> dict[str, ServiceModel]:
    session = botocore.session.get_session()
    return {name: session.get_service_model(name) for name in ("iam", "sts", "ec2")}


def check(models: dict[str, ServiceModel], service: str, operation: str, params: dict[str, Any]) -> None:
    model = models[service]
    validate(model.operation_model(operation).input_shape, params, model.metadata["protocol"])


def failure(models: dict[str, ServiceModel], service: str, operation: str, params: dict[str, Any]) -> AwsError:
    with pytest.raises(AwsError) as caught:
        check(models, service, operation, params)
    return caught.value


def one_error(text: str) -> str:
    return f"1 validation error detected: {text}"


# ---------------------------------------------------------------------------------------------- valid requests


def test_create_role_with_valid_params_passes(models: dict[str, ServiceModel]) -> None:
    params = {
        "Path": "/app/",
        "RoleName": "app-role",
        "AssumeRolePolicyDocument": TRUST_POLICY,
        "Description": "role for the app",
        "MaxSessionDuration": 7200,
        "Tags": [{"Key": "env", "Value": "prod"}],
    }
    check(models, "iam", "CreateRole", params)


def test_create_instance_profile_with_valid_params_passes(models: dict[str, ServiceModel]) -> None:
    check(models, "iam", "CreateInstanceProfile", {"InstanceProfileName": "app-profile", "Path": "/"})


def test_tag_instance_profile_with_valid_tags_passes(models: dict[str, ServiceModel]) -> None:
    tags = [{"Key": "env", "Value": "prod"}, {"Key": "owner:team", "Value": ""}]
    check(models, "iam", "TagInstanceProfile", {"InstanceProfileName": "app-profile", "Tags": tags})


def test_operation_without_input_shape_passes(models: dict[str, ServiceModel]) -> None:
    check(models, "iam", "GetAccountSummary", {})


def test_ec2_associate_with_valid_params_passes(models: dict[str, ServiceModel]) -> None:
    params = {"InstanceId": "i-0123456789abcdef0", "IamInstanceProfile": {"Name": "app-profile"}}
    check(models, "ec2", "AssociateIamInstanceProfile", params)


# ---------------------------------------------------------------------------------------------- query protocol


def test_role_name_over_64_characters_is_length_error(models: dict[str, ServiceModel]) -> None:
    # AWS (NixOS/nixops#328): Value '<name>' at 'roleName' ... Member must have length less than or equal to 64
    name = "r" * 65
    error = failure(models, "iam", "CreateRole", {"RoleName": name, "AssumeRolePolicyDocument": TRUST_POLICY})
    assert (error.code, error.status) == ("ValidationError", 400)
    assert error.message == one_error(
        f"Value '{name}' at 'roleName' failed to satisfy constraint: Member must have length less than or equal to 64"
    )


def test_instance_profile_name_with_space_is_pattern_error(models: dict[str, ServiceModel]) -> None:
    # AWS (aws/aws-sdk-ruby#1025): ... at 'instanceProfileName' ... Member must satisfy regular expression pattern
    error = failure(models, "iam", "CreateInstanceProfile", {"InstanceProfileName": "x y"})
    assert error.message == one_error(
        "Value 'x y' at 'instanceProfileName' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {NAME_PATTERN}"
    )


def test_two_bad_members_are_reported_in_model_order(models: dict[str, ServiceModel]) -> None:
    # CreateRole declares Path before RoleName; AWS (mmmorris1975/aws-runas#80) lists members in model order.
    name = "r" * 65
    params = {"RoleName": name, "Path": "app", "AssumeRolePolicyDocument": TRUST_POLICY}
    error = failure(models, "iam", "CreateRole", params)
    assert error.message == (
        "2 validation errors detected: "
        "Value 'app' at 'path' failed to satisfy constraint: "
        r"Member must satisfy regular expression pattern: (\u002F)|(\u002F[\u0021-\u007E]+\u002F); "
        f"Value '{name}' at 'roleName' failed to satisfy constraint: Member must have length less than or equal to 64"
    )


def test_pattern_is_reported_before_length_on_one_member(models: dict[str, ServiceModel]) -> None:
    # The exact AWS text for an empty RoleArn (newscorpaus/consigliere#18).
    error = failure(models, "sts", "AssumeRole", {"RoleArn": "", "RoleSessionName": "session"})
    assert error.message == (
        "2 validation errors detected: Value '' at 'roleArn' failed to satisfy constraint: "
        r"Member must satisfy regular expression pattern: [\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF"
        r"\uE000-\uFFFD\u10000-\u10FFFF]+; "
        "Value '' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 20"
    )


def test_tag_key_with_bad_character_names_the_list_element(models: dict[str, ServiceModel]) -> None:
    # AWS (SWO-GS/auto-tag#90): ... at 'tags.6.member.value' failed to satisfy constraint ...
    tags = [{"Key": "env", "Value": "prod"}, {"Key": "a&b", "Value": "x"}]
    error = failure(models, "iam", "TagInstanceProfile", {"InstanceProfileName": "p", "Tags": tags})
    assert error.message == one_error(
        "Value 'a&b' at 'tags.2.member.key' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {TAG_KEY_PATTERN}"
    )


def test_missing_tag_value_in_list_element_is_value_null(models: dict[str, ServiceModel]) -> None:
    error = failure(models, "iam", "TagInstanceProfile", {"InstanceProfileName": "p", "Tags": [{"Key": "env"}]})
    assert error.message == one_error(
        "Value null at 'tags.1.member.value' failed to satisfy constraint: Member must not be null"
    )


def test_more_than_50_tags_is_list_length_error(models: dict[str, ServiceModel]) -> None:
    # AWS prints a list like Java's List.toString (remind101/ssm-env#10: '[list, of, ten, items]'); how it prints
    # a Tag structure is not on record, so {Key=k, Value=v} (Java's Map form) is our choice.
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    error = failure(models, "iam", "TagInstanceProfile", {"InstanceProfileName": "p", "Tags": tags})
    shown = "[" + ", ".join(f"{{Key=k{i}, Value=v}}" for i in range(51)) + "]"
    assert error.message == one_error(
        f"Value '{shown}' at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50"
    )


def test_unknown_policy_scope_is_enum_error(models: dict[str, ServiceModel]) -> None:
    # AWS form (hashicorp/terraform-provider-aws#17502): Member must satisfy enum value set: [ENABLE, DISABLE]
    error = failure(models, "iam", "ListPolicies", {"Scope": "Everything"})
    assert error.message == one_error(
        "Value 'Everything' at 'scope' failed to satisfy constraint: "
        "Member must satisfy enum value set: [All, AWS, Local]"
    )


def test_max_items_zero_is_below_minimum(models: dict[str, ServiceModel]) -> None:
    # AWS quotes numbers too (goldstack/goldstack#425: Value '600' at 'durationSeconds' ...).
    error = failure(models, "iam", "ListRoles", {"MaxItems": 0})
    assert error.message == one_error(
        "Value '0' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1"
    )


def test_max_items_1001_is_above_maximum(models: dict[str, ServiceModel]) -> None:
    error = failure(models, "iam", "ListRoles", {"MaxItems": 1001})
    assert error.message == one_error(
        "Value '1001' at 'maxItems' failed to satisfy constraint: Member must have value less than or equal to 1000"
    )


def test_max_session_duration_100_is_below_minimum(models: dict[str, ServiceModel]) -> None:
    params = {"RoleName": "r", "AssumeRolePolicyDocument": TRUST_POLICY, "MaxSessionDuration": 100}
    error = failure(models, "iam", "CreateRole", params)
    assert error.message == one_error(
        "Value '100' at 'maxSessionDuration' failed to satisfy constraint: "
        "Member must have value greater than or equal to 3600"
    )


def test_missing_role_name_is_value_null(models: dict[str, ServiceModel]) -> None:
    # AWS (aws/aws-sdk-cpp#1252): Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null
    error = failure(models, "iam", "CreateRole", {"AssumeRolePolicyDocument": TRUST_POLICY})
    assert error.message == one_error("Value null at 'roleName' failed to satisfy constraint: Member must not be null")


def test_sensitive_member_value_is_not_echoed(models: dict[str, ServiceModel]) -> None:
    # AWS leaves out sensitive values: "Value at 'password' failed to satisfy constraint: ..." (Cognito).
    error = failure(models, "iam", "CreateLoginProfile", {"UserName": "u", "Password": "p\u0100ss"})
    assert error.message == one_error(
        "Value at 'password' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {LATIN1_PATTERN}"
    )


def test_unicode_letters_are_allowed_in_tag_value(models: dict[str, ServiceModel]) -> None:
    tags = [{"Key": "Stadt", "Value": "Zürich 東京 ٣"}, {"Key": "город", "Value": "Москва"}]
    check(models, "iam", "TagInstanceProfile", {"InstanceProfileName": "p", "Tags": tags})


def test_non_ascii_letter_in_role_name_fails_the_java_word_class(models: dict[str, ServiceModel]) -> None:
    # Java's \w is [a-zA-Z_0-9]; Python's would accept "ô".
    error = failure(models, "iam", "GetRole", {"RoleName": "rôle"})
    assert error.message == one_error(
        "Value 'rôle' at 'roleName' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {NAME_PATTERN}"
    )


def test_policy_document_allows_tab_through_u0009_escape(models: dict[str, ServiceModel]) -> None:
    document = '{\n\t"Version": "2012-10-17"\r\n}'
    check(models, "iam", "CreateRole", {"RoleName": "r", "AssumeRolePolicyDocument": document})


def test_policy_document_rejects_character_above_u00ff(models: dict[str, ServiceModel]) -> None:
    document = '{"Sid": "\u0100"}'
    error = failure(models, "iam", "CreateRole", {"RoleName": "r", "AssumeRolePolicyDocument": document})
    assert error.message == one_error(
        f"Value '{document}' at 'assumeRolePolicyDocument' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {LATIN1_PATTERN}"
    )


def test_every_model_pattern_compiles(models: dict[str, ServiceModel]) -> None:
    patterns: set[str] = set()
    for model in models.values():
        for operation in model.operation_names:
            pending = [model.operation_model(operation).input_shape]
            while pending:
                shape = pending.pop()
                if shape is None:
                    continue
                if "pattern" in shape.metadata:
                    patterns.add(shape.metadata["pattern"])
                pending.extend(getattr(shape, "members", {}).values())
                pending.extend(getattr(shape, name) for name in ("member", "key", "value") if hasattr(shape, name))
    assert patterns
    for pattern in patterns:
        compile_java_pattern(pattern)


# ---------------------------------------------------------------------------------------------- maps (none in the
# IAM/STS/EC2 inputs, so a small model of our own)


@pytest.fixture(scope="module")
def labels_shape() -> Any:
    resolver = ShapeResolver(
        {
            "Input": {"type": "structure", "members": {"Labels": {"shape": "Labels"}}},
            "Labels": {"type": "map", "key": {"shape": "Key"}, "value": {"shape": "Value"}, "max": 2},
            "Key": {"type": "string", "min": 1},
            "Value": {"type": "string", "max": 4, "pattern": "[a-z]*"},
        }
    )
    return resolver.get_shape_by_name("Input")


def test_map_with_too_many_entries_is_length_error(labels_shape: Any) -> None:
    with pytest.raises(AwsError) as caught:
        validate(labels_shape, {"Labels": {"a": "x", "b": "y", "c": "z"}}, "query")
    assert caught.value.message == one_error(
        "Value '{a=x, b=y, c=z}' at 'labels' failed to satisfy constraint: "
        "Member must have length less than or equal to 2"
    )


def test_bad_map_value_is_one_summary_message(labels_shape: Any) -> None:
    # AWS (SWO-GS/auto-tag#77): ... at 'tags' failed to satisfy constraint: Map value must satisfy constraint:
    # [Member must have length less than or equal to 256, ..., Member must satisfy regular expression pattern: ...]
    with pytest.raises(AwsError) as caught:
        validate(labels_shape, {"Labels": {"a": "BAD", "b": "toolong"}}, "query")
    assert caught.value.message == one_error(
        "Value '{a=BAD, b=toolong}' at 'labels' failed to satisfy constraint: Map value must satisfy constraint: "
        "[Member must have length less than or equal to 4, Member must satisfy regular expression pattern: [a-z]*]"
    )


# ---------------------------------------------------------------------------------------------- ec2 protocol


def test_ec2_missing_instance_id_is_missing_parameter(models: dict[str, ServiceModel]) -> None:
    error = failure(models, "ec2", "ModifyInstanceMetadataOptions", {"HttpTokens": "required"})
    assert (error.code, error.message, error.status) == (
        "MissingParameter",
        "The request must contain the parameter InstanceId",
        400,
    )


def test_ec2_missing_list_is_named_by_its_query_name(models: dict[str, ServiceModel]) -> None:
    # StopInstances' member InstanceIds goes on the wire as InstanceId.N (queryName).
    error = failure(models, "ec2", "StopInstances", {})
    assert error.message == "The request must contain the parameter InstanceId"


def test_ec2_missing_parameter_is_reported_before_a_bad_value(models: dict[str, ServiceModel]) -> None:
    error = failure(models, "ec2", "ModifyInstanceMetadataOptions", {"HttpTokens": "always"})
    assert error.code == "MissingParameter"


def test_ec2_bad_http_tokens_is_invalid_parameter_value(models: dict[str, ServiceModel]) -> None:
    # AWS (hashicorp/terraform-provider-aws#25547), for the sibling option:
    # "A value of '' is not valid for HttpEndpoint. Specify either 'enabled' or 'disabled' and try again."
    params = {"InstanceId": "i-0123456789abcdef0", "HttpTokens": "always"}
    error = failure(models, "ec2", "ModifyInstanceMetadataOptions", params)
    assert (error.code, error.message, error.status) == (
        "InvalidParameterValue",
        "A value of 'always' is not valid for HttpTokens. Specify either 'optional' or 'required' and try again.",
        400,
    )


def test_ec2_bad_instance_type_is_invalid_value(models: dict[str, ServiceModel]) -> None:
    # AWS (boto/boto3#2233): "Invalid value 'us-east-1a' for AvailabilityZone."
    error = failure(models, "ec2", "RunInstances", {"MinCount": 1, "MaxCount": 1, "InstanceType": "t9.huge"})
    assert (error.code, error.message) == ("InvalidParameterValue", "Invalid value 't9.huge' for InstanceType.")


def test_ec2_model_range_is_left_to_the_handlers(models: dict[str, ServiceModel]) -> None:
    # AWS accepts MaxResults 1001 here although the model says 5-1000 (captured AWS behaviour; see validate.py).
    check(models, "ec2", "DescribeIamInstanceProfileAssociations", {"MaxResults": 1001})
