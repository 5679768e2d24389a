"""Result dicts and AwsErrors → the XML AWS sends, by walking the output shape (query and EC2 envelopes)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from botocore.model import OperationModel, Shape, StructureShape

from roleport.errors import COMMON_STATUS, AwsError
from roleport.protocol import spec

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#xD;"})


def serialize(service: str, operation: OperationModel, result: dict[str, Any], request_id: str) -> bytes:
    model = spec.service_model(service)
    name = operation.name
    shape = operation.output_shape
    out: list[str] = []
    if model.protocol == "ec2":
        namespace = _ec2_namespace()
        out.append(f'<?xml version="1.0" encoding="UTF-8"?>\n<{name}Response xmlns="{namespace}">')
        out.append(f"<requestId>{request_id}</requestId>")
        if shape is not None:
            _members(shape, result, out, True)
        out.append(f"</{name}Response>")
    else:
        out.append(f'<{name}Response xmlns="{model.metadata["xmlNamespace"]}">')
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper", f"{name}Result")
            out.append(f"<{wrapper}>")
            _members(shape, result, out, False)
            out.append(f"</{wrapper}>")
        out.append(f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{name}Response>")
    return "".join(out).encode()


def error_status(service: str | None, error: AwsError) -> int:
    if error.status is not None:
        return error.status
    if service is not None:
        status = spec.modelled_error_status(service).get(error.code)
        if status is not None:
            return status
    return COMMON_STATUS.get(error.code, 400)


def serialize_error(service: str | None, error: AwsError, request_id: str) -> tuple[int, bytes]:
    status = error_status(service, error)
    code, message = _text(error.code), _text(error.message)
    if service == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
            f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
    else:
        namespace = spec.service_model(service or "iam").metadata["xmlNamespace"]
        fault = "Sender" if status < 500 else "Receiver"
        body = (
            f'<ErrorResponse xmlns="{namespace}"><Error><Type>{fault}</Type><Code>{code}</Code>'
            f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    return status, body.encode()


def _ec2_namespace() -> str:
    # The model's namespace lacks the trailing slash that EC2's responses carry.
    namespace = str(spec.service_model("ec2").metadata["xmlNamespace"])
    return namespace if namespace.endswith("/") else namespace + "/"


def _members(shape: StructureShape, value: dict[str, Any], out: list[str], ec2: bool) -> None:
    for member_name, member in shape.members.items():
        item = value.get(member_name)
        if item is None:
            continue
        tag = member.serialization.get("name", member_name)
        if member.type_name == "list" and member.serialization.get("flattened"):
            for element in item:
                _element(tag, member.member, element, out, ec2)
        else:
            _element(tag, member, item, out, ec2)


def _element(tag: str, shape: Shape, value: Any, out: list[str], ec2: bool) -> None:
    kind = shape.type_name
    out.append(f"<{tag}>")
    if kind == "structure":
        _members(shape, value, out, ec2)  # type: ignore[arg-type]
    elif kind == "list":
        member = shape.member  # type: ignore[attr-defined]
        item_tag = member.serialization.get("name", "item" if ec2 else "member")
        for element in value:
            _element(item_tag, member, element, out, ec2)
    elif kind == "map":
        key_tag = shape.key.serialization.get("name", "key")  # type: ignore[attr-defined]
        value_tag = shape.value.serialization.get("name", "value")  # type: ignore[attr-defined]
        for key, item in value.items():
            out.append("<entry>")
            _element(key_tag, shape.key, key, out, ec2)  # type: ignore[attr-defined]
            _element(value_tag, shape.value, item, out, ec2)  # type: ignore[attr-defined]
            out.append("</entry>")
    else:
        out.append(_scalar(shape, value, ec2))
    out.append(f"</{tag}>")


def _scalar(shape: Shape, value: Any, ec2: bool) -> str:
    kind = shape.type_name
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        return _timestamp(value, ec2)
    if kind == "blob":
        return base64.b64encode(value).decode()
    if kind == "string" and shape.name == "policyDocumentType":
        # IAM sends policy documents URL-encoded inside the XML; SDKs decode them.
        return quote(str(value), safe="")
    return _text(str(value))


def _timestamp(value: datetime, ec2: bool) -> str:
    value = value.astimezone(UTC)
    if ec2:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: str) -> str:
    return value.translate(_ESCAPES)
