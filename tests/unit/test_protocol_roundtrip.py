"""botocore as the oracle: what its serializer sends, our parser reads back; what we send, its parser reads back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from roleport.errors import AwsError
from roleport.protocol import query, spec, xml
from roleport.services import registry

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


_ABSENT = object()  # a member left out: a recursive shape again, or a structure with nothing to fill


def sample(shape: Any) -> Any:
    """A value that fits the shape, filling every member at every depth, so a round trip exercises the whole tree."""
    value = _sample(shape, frozenset())
    return {} if value is _ABSENT else value


def _sample(shape: Any, open_shapes: frozenset[str]) -> Any:
    # Only a shape that contains itself ends the descent, so a model that nests deeper still is filled to the leaves.
    kind = shape.type_name
    if kind == "structure":
        if shape.name in open_shapes:
            return _ABSENT
        inner = open_shapes | {shape.name}
        members = {name: _sample(member, inner) for name, member in shape.members.items()}
        filled = {name: value for name, value in members.items() if value is not _ABSENT}
        # botocore sends nothing for an empty structure, so the parser rightly reads it as absent.
        return filled or _ABSENT
    if kind == "list":
        item = _sample(shape.member, open_shapes)
        return _ABSENT if item is _ABSENT else [item, _sample(shape.member, open_shapes)]
    if kind == "map":
        value = _sample(shape.value, open_shapes)
        return _ABSENT if value is _ABSENT else {"k1": value}
    if kind in ("integer", "long"):
        return 7
    if kind == "boolean":
        return True
    if kind in ("float", "double"):
        return 1.5
    if kind == "timestamp":
        return NOW
    if kind == "blob":
        return b"bytes"
    enum = shape.metadata.get("enum")
    return enum[0] if enum else f"v-{shape.name}"


OPERATIONS = sorted(registry.operations())


@pytest.mark.parametrize(("service", "name"), OPERATIONS)
def test_parser_reads_what_botocore_sends(service: str, name: str) -> None:
    model = spec.service_model(service)
    operation = model.operation_model(name)
    params = sample(operation.input_shape) if operation.input_shape else {}
    request = create_serializer(model.protocol, include_validation=False).serialize_to_request(params, operation)
    body = request["body"]
    form = (
        {k: str(v) for k, v in body.items()}
        if isinstance(body, dict)
        else dict(parse_qsl(body, keep_blank_values=True))
    )
    parsed_operation, parsed = query.parse(service, form)
    assert parsed_operation.name == name
    assert parsed == params


@pytest.mark.parametrize(("service", "name"), OPERATIONS)
def test_botocore_reads_what_serializer_sends(service: str, name: str) -> None:
    model = spec.service_model(service)
    operation = model.operation_model(name)
    result = sample(operation.output_shape) if operation.output_shape else {}
    body = xml.serialize(service, operation, result, "req-123")
    parsed = create_parser(model.protocol).parse(
        {"body": body, "headers": {}, "status_code": 200}, operation.output_shape
    )
    metadata = parsed.pop("ResponseMetadata")
    assert metadata["RequestId"] == "req-123"
    assert _normalise(parsed) == _normalise(result)


def test_policy_documents_are_url_encoded_on_the_wire() -> None:
    operation = spec.operation_model("iam", "GetRolePolicy")
    document = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'
    body = xml.serialize("iam", operation, {"RoleName": "r", "PolicyName": "p", "PolicyDocument": document}, "id")
    encoded = body.decode().split("<PolicyDocument>")[1].split("</PolicyDocument>")[0]
    assert "%7B%22Version%22" in encoded and unquote(encoded) == document


def test_query_error_envelope_has_type_code_message_and_request_id() -> None:
    status, body = xml.serialize_error("iam", AwsError("NoSuchEntity", "Role <x> & y"), "rid-1")
    parsed = create_parser("query").parse({"body": body, "headers": {}, "status_code": status}, None)
    assert status == 404
    assert parsed["Error"] == {"Type": "Sender", "Code": "NoSuchEntity", "Message": "Role <x> & y"}
    assert parsed["ResponseMetadata"]["RequestId"] == "rid-1"


def test_ec2_error_envelope_uses_request_id_with_capital_d() -> None:
    status, body = xml.serialize_error("ec2", AwsError("InvalidInstanceID.NotFound", "nope"), "rid-2")
    assert status == 400
    assert b"<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>" in body
    assert b"<RequestID>rid-2</RequestID>" in body


def test_server_errors_are_receiver_faults() -> None:
    status, body = xml.serialize_error("iam", AwsError("ServiceFailure", "boom"), "rid")
    assert status == 500 and b"<Type>Receiver</Type>" in body


def test_unknown_action_is_invalid_action() -> None:
    with pytest.raises(AwsError) as caught:
        query.parse("iam", {"Action": "NoSuchThing"})
    assert caught.value.code == "InvalidAction"


def test_non_numeric_integer_is_a_validation_error() -> None:
    with pytest.raises(AwsError) as caught:
        query.parse("iam", {"Action": "ListRoles", "MaxItems": "lots"})
    assert caught.value.code == "ValidationError"


def test_empty_list_arrives_as_empty_list() -> None:
    _, params = query.parse("iam", {"Action": "UntagRole", "RoleName": "r", "TagKeys": ""})
    assert params == {"RoleName": "r", "TagKeys": []}


def test_detect_routes_by_scope_then_version_then_action() -> None:
    assert spec.detect("sts", {"Action": "ListRoles"}) == "sts"
    assert spec.detect(None, {"Version": "2016-11-15", "Action": "GetCallerIdentity"}) == "ec2"
    assert spec.detect(None, {"Action": "GetCallerIdentity"}) == "sts"
    assert spec.detect("s3", {}) is None


def _normalise(value: Any) -> Any:
    """botocore parses timestamps into local-zone datetimes and decodes nothing else; compare instants."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value
