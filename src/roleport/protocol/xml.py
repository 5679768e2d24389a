"""Result dicts and AwsErrors → the XML AWS sends, by walking the output shape (query and EC2 envelopes)."""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from botocore.model import OperationModel, Shape

from roleport.errors import COMMON_STATUS, AwsError
from roleport.protocol import spec


def serialize(service: str, operation: OperationModel, result: dict[str, Any], request_id: str) -> bytes:
    id_first, before, between, after, write = _envelope(service, operation.name)
    out = [before]
    if id_first:  # EC2 names the request first, the query protocol last
        out.append(request_id)
        out.append(between)
        write(result, out)
    else:
        write(result, out)
        out.append(between)
        out.append(request_id)
    out.append(after)
    return "".join(out).encode()


def serialize_parts(service: str, operation: OperationModel, result: dict[str, Any]) -> tuple[bytes, bytes]:
    """serialize's answer in the two parts that go before and after the request id, so an answer can be kept and
    sent again under another id (read_cache.py)."""
    id_first, before, between, after, write = _envelope(service, operation.name)
    if id_first:
        out = [between]
        write(result, out)
        out.append(after)
        return before.encode(), "".join(out).encode()
    out = [before]
    write(result, out)
    out.append(between)
    return "".join(out).encode(), after.encode()


@functools.cache
def _envelope(service: str, name: str) -> tuple[bool, str, str, str, Writer]:
    """An operation's response around its result and request id, worked out once per operation."""
    model = spec.service_model(service)
    shape = spec.operation_model(service, name).output_shape
    if model.protocol == "ec2":
        before = f'<?xml version="1.0" encoding="UTF-8"?>\n<{name}Response xmlns="{_ec2_namespace()}"><requestId>'
        write = _structure_writer(service, shape.name, True) if shape is not None else _nothing
        return True, before, "</requestId>", f"</{name}Response>", write
    before = f'<{name}Response xmlns="{model.metadata["xmlNamespace"]}">'
    between = "<ResponseMetadata><RequestId>"
    after = f"</RequestId></ResponseMetadata></{name}Response>"
    if shape is None:
        return False, before, between, after, _nothing
    wrapper = shape.serialization.get("resultWrapper", f"{name}Result")
    write = _structure_writer(service, shape.name, False)
    return False, f"{before}<{wrapper}>", f"</{wrapper}>{between}", after, write


def _nothing(_value: Any, _out: list[str]) -> None:
    return None


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
    """A function that writes a structure's members, generated once per shape as straight-line Python: a response
    then walks no model and makes no call per member, which made serializing a third of a fast call's cost."""
    shape = spec.service_model(service).shape_for(shape_name)
    code = _Code(service, ec2)
    code.line(1, "append = out.append")
    code.members(shape, "value", 1, (shape_name,))
    source = "def write(value, out):\n" + "\n".join(code.lines) + "\n"
    scope: dict[str, Any] = dict(code.names)
    exec(
        compile(source, f"<xml writer {service}:{shape_name}>", "exec"), scope
    )  # the source is built from the model's names
    return scope["write"]  # type: ignore[no-any-return]


class _Code:
    """Builds the source of one structure writer. Every emitted line appends to `out` exactly what the model asks
    for, in member order, skipping members that are absent or None."""

    def __init__(self, service: str, ec2: bool) -> None:
        self.service = service
        self.ec2 = ec2
        self.lines: list[str] = []
        self.names: dict[str, Any] = {
            "text": _text,
            "url_encoded": _url_encoded,
            "timestamp": _timestamp_ec2 if ec2 else _timestamp_query,
            "b64": _b64,
        }
        self._count = 0

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def variable(self) -> str:
        self._count += 1
        return f"v{self._count}"

    def members(self, shape: Shape, value: str, depth: int, path: tuple[str, ...]) -> None:
        for member_name, member in shape.members.items():  # type: ignore[attr-defined]
            tag = member.serialization.get("name", member_name)
            item = self.variable()
            self.line(depth, f"{item} = {value}.get({member_name!r})")
            self.line(depth, f"if {item} is not None:")
            if member.type_name == "list" and member.serialization.get("flattened"):
                element = self.variable()
                self.line(depth + 1, f"for {element} in {item}:")
                self.element(member.member, element, tag, depth + 2, path)  # type: ignore[attr-defined]
            else:
                self.element(member, item, tag, depth + 1, path)

    def element(self, shape: Shape, value: str, tag: str, depth: int, path: tuple[str, ...]) -> None:
        """<tag>value</tag> for a value of the shape."""
        kind = shape.type_name
        if not tag.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"unexpected XML name in the model: {tag!r}")  # it goes into generated source
        opening, closing = f"<{tag}>", f"</{tag}>"
        if kind == "structure":
            self.line(depth, f"append({opening!r})")
            if shape.name in path:  # a recursive shape: its own writer, looked up when it is written
                self.names["structure_writer"] = _structure_writer
                args = f"{self.service!r}, {shape.name!r}, {self.ec2!r}"
                self.line(depth, f"structure_writer({args})({value}, out)")
            else:
                self.members(shape, value, depth, (*path, shape.name))
            self.line(depth, f"append({closing!r})")
        elif kind == "list":
            member = shape.member  # type: ignore[attr-defined]
            member_tag = member.serialization.get("name", "item" if self.ec2 else "member")
            element = self.variable()
            self.line(depth, f"append({opening!r})")
            self.line(depth, f"for {element} in {value}:")
            self.element(member, element, member_tag, depth + 1, path)
            self.line(depth, f"append({closing!r})")
        elif kind == "map":
            key_tag = shape.key.serialization.get("name", "key")  # type: ignore[attr-defined]
            value_tag = shape.value.serialization.get("name", "value")  # type: ignore[attr-defined]
            key, item = self.variable(), self.variable()
            self.line(depth, f"append({opening!r})")
            self.line(depth, f"for {key}, {item} in {value}.items():")
            self.line(depth + 1, "append('<entry>')")
            self.element(shape.key, key, key_tag, depth + 1, path)  # type: ignore[attr-defined]
            self.element(shape.value, item, value_tag, depth + 1, path)  # type: ignore[attr-defined]
            self.line(depth + 1, "append('</entry>')")
            self.line(depth, f"append({closing!r})")
        else:
            self.line(depth, f"append(f{opening + '{' + self.scalar(kind, shape.name, value) + '}' + closing!r})")

    def scalar(self, kind: str, shape_name: str, value: str) -> str:
        """An expression for a scalar's text."""
        if kind == "boolean":
            return f"('true' if {value} else 'false')"
        if kind == "timestamp":
            return f"timestamp({value})"
        if kind == "blob":
            return f"b64({value})"
        if kind == "string" and shape_name == "policyDocumentType":
            # IAM sends policy documents URL-encoded inside the XML; SDKs decode them.
            return f"url_encoded(str({value}))"
        if kind == "string":
            return f"text({value})"
        return f"str({value})"


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


@functools.lru_cache(maxsize=4096)
def _url_encoded(text: str) -> str:
    # A role's trust policy goes out with every GetRole and GetInstanceProfile; encoding it is the costliest step.
    return quote(text, safe="")


# Timestamps from two-digit strings looked up, not formatted: they cost a quarter of isoformat(timespec=...), which
# goes through C's printf, and half of %-formatting. Dates differ per entity, so a cache would only help until it
# overflowed (and make a page's cost depend on how many entities exist). Both forms equal isoformat's, cut (not
# rounded) to the second or the millisecond.
_TWO_DIGITS = tuple(f"{number:02d}" for number in range(100))
_THREE_DIGITS = tuple(f"{number:03d}" for number in range(1000))


def _timestamp_query(value: datetime) -> str:
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    d = _TWO_DIGITS
    return f"{_year(utc.year)}-{d[utc.month]}-{d[utc.day]}T{d[utc.hour]}:{d[utc.minute]}:{d[utc.second]}Z"


def _timestamp_ec2(value: datetime) -> str:
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    d = _TWO_DIGITS
    millis = _THREE_DIGITS[utc.microsecond // 1000]
    return f"{_year(utc.year)}-{d[utc.month]}-{d[utc.day]}T{d[utc.hour]}:{d[utc.minute]}:{d[utc.second]}.{millis}Z"


def _year(year: int) -> str | int:
    return year if year >= 1000 else f"{year:04d}"


def _text(value: Any) -> str:
    if value.__class__ is not str:
        value = str(value)
    # Most values need no escaping; four substring scans cost a third of one regex search, and far less than
    # str.translate with a mapping on every value.
    if "&" not in value and "<" not in value and ">" not in value and "\r" not in value:
        return value
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")
