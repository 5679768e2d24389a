"""Result dicts and AwsErrors → the XML AWS sends, by walking the output shape (query and EC2 envelopes)."""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from botocore.model import OperationModel, Shape

from roleport.errors import COMMON_STATUS, AwsError
from roleport.protocol import spec

_SPECIAL = re.compile(r"[&<>\r]")


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
            _structure_writer(service, shape.name, True)(result, out)
        out.append(f"</{name}Response>")
    else:
        out.append(f'<{name}Response xmlns="{model.metadata["xmlNamespace"]}">')
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper", f"{name}Result")
            out.append(f"<{wrapper}>")
            _structure_writer(service, shape.name, False)(result, out)
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


Writer = Callable[[Any, list[str]], None]


@functools.cache
def _structure_writer(service: str, shape_name: str, ec2: bool) -> Writer:
    """A function that writes a structure's members: built once per shape, so a response walks no model."""
    shape = spec.service_model(service).shape_for(shape_name)
    members: list[tuple[str, str, str, Writer, bool]] = []
    for member_name, member in shape.members.items():
        tag = member.serialization.get("name", member_name)
        flattened = member.type_name == "list" and bool(member.serialization.get("flattened"))
        target = member.member if flattened else member  # type: ignore[attr-defined]
        members.append((member_name, f"<{tag}>", f"</{tag}>", _writer(service, target, ec2), flattened))

    def write(value: Any, out: list[str]) -> None:
        for member_name, opening, closing, writer, flattened in members:
            item = value.get(member_name)
            if item is None:
                continue
            for element in item if flattened else (item,):
                out.append(opening)
                writer(element, out)
                out.append(closing)

    return write


def _writer(service: str, shape: Shape, ec2: bool) -> Writer:
    kind = shape.type_name
    if kind == "structure":
        name = shape.name

        def structure(value: Any, out: list[str]) -> None:
            _structure_writer(service, name, ec2)(value, out)

        return structure
    if kind == "list":
        member = shape.member  # type: ignore[attr-defined]
        tag = member.serialization.get("name", "item" if ec2 else "member")
        opening, closing, item_writer = f"<{tag}>", f"</{tag}>", _writer(service, member, ec2)

        def write_list(value: Any, out: list[str]) -> None:
            for element in value:
                out.append(opening)
                item_writer(element, out)
                out.append(closing)

        return write_list
    if kind == "map":
        key_tag = shape.key.serialization.get("name", "key")  # type: ignore[attr-defined]
        value_tag = shape.value.serialization.get("name", "value")  # type: ignore[attr-defined]
        key_writer = _writer(service, shape.key, ec2)  # type: ignore[attr-defined]
        value_writer = _writer(service, shape.value, ec2)  # type: ignore[attr-defined]

        def write_map(value: Any, out: list[str]) -> None:
            for key, item in value.items():
                out.append(f"<entry><{key_tag}>")
                key_writer(key, out)
                out.append(f"</{key_tag}><{value_tag}>")
                value_writer(item, out)
                out.append(f"</{value_tag}></entry>")

        return write_map
    return _scalar_writer(kind, shape.name, ec2)


def _scalar_writer(kind: str, shape_name: str, ec2: bool) -> Writer:
    if kind == "boolean":
        return lambda value, out: out.append("true" if value else "false")
    if kind == "timestamp":
        return lambda value, out: out.append(_timestamp(value, ec2))
    if kind == "blob":
        return lambda value, out: out.append(base64.b64encode(value).decode())
    if kind == "string" and shape_name == "policyDocumentType":
        # IAM sends policy documents URL-encoded inside the XML; SDKs decode them.
        return lambda value, out: out.append(_url_encoded(str(value)))
    if kind == "string":
        return lambda value, out: out.append(_text(value if isinstance(value, str) else str(value)))
    return lambda value, out: out.append(str(value))


@functools.lru_cache(maxsize=4096)
def _url_encoded(text: str) -> str:
    # A role's trust policy goes out with every GetRole and GetInstanceProfile; encoding it is the costliest step.
    return quote(text, safe="")


def _timestamp(value: datetime, ec2: bool) -> str:
    # isoformat costs a fraction of strftime; dates differ per entity, so a cache would only help until it
    # overflowed (and make a page's cost depend on how many entities exist).
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    if ec2:
        return utc.isoformat(timespec="milliseconds")[:23] + "Z"
    return utc.isoformat(timespec="seconds")[:19] + "Z"


def _text(value: str) -> str:
    # Most values need no escaping; a search is far cheaper than str.translate with a mapping on every value.
    if _SPECIAL.search(value) is None:
        return value
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")
