"""The AWS request pipeline: from the bytes of one HTTP request to the bytes of AWS's answer."""

from __future__ import annotations

import itertools
import logging
import os
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from roleport.auth import principal as principals
from roleport.auth import sigv4
from roleport.auth.access import Access
from roleport.auth.principal import Principal
from roleport.clock import Clock, system_clock
from roleport.config import Settings
from roleport.context import Ctx
from roleport.errors import AwsError
from roleport.protocol import query, spec, validate, xml
from roleport.read_cache import ReadCache
from roleport.services import registry
from roleport.store.db import Store, Tx

log = logging.getLogger("roleport")


class WireRequest(NamedTuple):
    """One HTTP request as the pipeline reads it (immutable; a named tuple is made for a fraction of what a frozen
    dataclass costs, and one is made per call)."""

    method: str
    raw_path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    client: str = "127.0.0.1"  # the peer's address, for aws:SourceIp


class Pipeline:
    """One AWS call: detect the service, authenticate, parse, validate, run the handler in a transaction, serialize."""

    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.operations = registry.operations()
        self.cache = ReadCache() if settings.read_cache else None

    def handle(self, request: WireRequest) -> tuple[int, bytes, str]:
        request_id = _request_id()
        service: str | None = None
        try:
            form = _form(request)
            signed = sigv4.parse(request.method, request.query_string, request.headers)
            service = spec.detect(signed.service if signed else None, form)
            if service is None:
                raise AwsError("InvalidAction", "Could not find operation or service for the request.", status=400)
            return 200, self._call(service, signed, request, form, request_id), request_id
        except AwsError as error:
            status, body = xml.serialize_error(service, error, request_id)
            return status, body, request_id
        except Exception:
            log.exception("request %s failed", request_id)
            failure = AwsError("InternalFailure", "The request processing has failed because of an unknown error.")
            status, body = xml.serialize_error(service, failure, request_id)
            return status, body, request_id

    def _call(
        self, service: str, signed: sigv4.SignedRequest | None, request: WireRequest, form: dict[str, str], rid: str
    ) -> bytes:
        now = self.clock()
        if signed is None:
            raise AwsError("MissingAuthenticationToken", "Request is missing Authentication Token", status=403)
        try:
            sigv4.check_scope(signed, service, spec.signing_regions(service, self.settings.region))
        except AwsError as error:
            raise (_ec2_auth_error(error) if service == "ec2" else error) from None
        handler = self.operations.get((service, form.get("Action", "")))
        known = principals.root_key(self.settings, signed)
        if known is None or handler is None or self.cache is None or not handler.cacheable:
            head, tail = self._answer(service, signed, request, form, rid, now, handler, known)
            return b"".join((head, rid.encode(), tail))
        self._verify(service, signed, request, known[1])
        # The form is the whole request but for its auth, which is checked above on every call. Presigned auth sits
        # in the query string, so such a form never repeats: not worth keeping.
        key = None if signed.presigned else (service, *form.items())
        marker = self.store.change_marker()  # taken before the read, so a write during it retires the answer
        kept = self.cache.get(key, marker) if key is not None and marker is not None else None
        if kept is None:
            kept = self._answer(service, signed, request, form, rid, now, handler, known, verified=True)
            if key is not None and marker is not None:
                self.cache.put(key, marker, *kept)
        return b"".join((kept[0], rid.encode(), kept[1]))

    def _answer(
        self,
        service: str,
        signed: sigv4.SignedRequest,
        request: WireRequest,
        form: dict[str, str],
        rid: str,
        now: datetime,
        handler: registry.OperationSpec | None,
        known: tuple[Principal, str] | None,
        verified: bool = False,
    ) -> tuple[bytes, bytes]:
        """The answer's XML in two parts, around the request id (xml.serialize_parts)."""
        # Root is neither looked up nor authorized, so its call runs only the handler's own statements.
        alone = known is not None and handler is not None and handler.single_statement
        with self.store.transaction(handler.write if handler else False, one_statement=alone) as tx:
            principal, secret = known or principals.resolve(tx, self.settings, signed, service, now)
            if not verified:
                self._verify(service, signed, request, secret)
            operation, params = query.parse(service, form)
            if operation.input_shape is not None:
                validate.validate(operation.input_shape, params, spec.service_model(service).protocol)
            if handler is None:
                raise AwsError("NotImplemented", f"roleport does not implement {service}:{operation.name}.", status=501)
            result = self.run(tx, principal, handler, params, request_id=rid, now=now, client=request.client)
        return xml.serialize_parts(service, operation, result)

    @staticmethod
    def _verify(service: str, signed: sigv4.SignedRequest, request: WireRequest, secret: str) -> None:
        try:
            sigv4.verify(
                signed,
                request.method,
                request.raw_path,
                request.query_string,
                request.headers,
                request.body,
                secret,
                system_clock(),  # clients sign with real time, whatever the server's clock says
            )
        except AwsError as error:
            raise (_ec2_auth_error(error) if service == "ec2" else error) from None

    def run(
        self,
        tx: Tx,
        principal: Principal,
        handler: registry.OperationSpec,
        params: dict[str, Any],
        *,
        request_id: str,
        now: datetime,
        client: str,
    ) -> dict[str, Any]:
        """Authorize a validated call, answer DryRun and run its handler: the steps the web console shares with the
        wire (console/actions.py)."""
        service = handler.service
        access = Access(tx, principal, service, now, client, self.settings.region)
        if principal.kind != "root" and handler.authorize:
            handler.authorize_call(access, params)
        if params.get("DryRun"):
            # EC2's DryRun asks only whether the caller may make the call; it changes and checks nothing else.
            raise AwsError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", status=412)
        ctx = Ctx(request_id, now, self.settings, principal, tx, access)
        return handler.handler(ctx, params)


# Header names as the pipeline reads them (lower-case text), by their bytes: a client sends the same few names on every
# request, and a lookup costs less than decoding and lower-casing each. Bounded, since the names are the client's.
_HEADER_NAMES: dict[bytes, str] = {}


def _header_name(raw: bytes) -> str:
    name = raw.decode("latin-1").lower()
    if len(_HEADER_NAMES) < 512:
        _HEADER_NAMES[raw] = name
    return name


def _ec2_auth_error(error: AwsError) -> AwsError:
    """EC2 words every credential failure as AuthFailure, and a stale request as RequestExpired (EC2 error codes)."""
    if error.message.startswith(("Signature expired", "Signature not yet current")):
        return AwsError("RequestExpired", f"Request has expired. {error.message}", status=400)
    return AwsError("AuthFailure", "AWS was not able to validate the provided access credentials", status=401)


def _form(request: WireRequest) -> dict[str, str]:
    """Query-string and form-body parameters together, as AWS accepts either for these protocols."""
    form = _pairs(request.query_string, {}) if request.query_string else {}
    content_type = request.headers.get("content-type", "application/x-www-form-urlencoded")
    if request.body and content_type.startswith("application/x-www-form-urlencoded"):
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise AwsError("MalformedQueryString", "The request body is not valid UTF-8.", status=400) from None
        _pairs(text, form)
    return form


def _pairs(text: str, into: dict[str, str]) -> dict[str, str]:
    """urllib's parse_qsl(keep_blank_values=True) into a dict, the last value of a name winning; names and values
    that hold no escape (nearly all of them) skip the decoding, which was most of parse_qsl's cost."""
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name:
            name = unquote(name.replace("+", " "))
        if "%" in value or "+" in value:
            value = unquote(value.replace("+", " "))
        into[name] = value
    return into


# Request ids are UUID version 4 strings, as AWS's are. They need to be unique, not unpredictable: each process
# draws the first 80 bits once from the system's random source (74 random, the rest version and variant), and the
# last 48 are a counter times an odd number modulo 2**48 (a bijection, so no repeats within 2**48 calls, yet
# neighbours look unrelated as AWS's do). A read of the random source per request (uuid4's way) cost a tenth of a
# fast call.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # the version (4) and variant (RFC 4122) bits
_LAST_GROUP = (1 << 48) - 1
_SPREAD = 0x9E3779B97F4B  # odd: the golden ratio's fraction in 48 bits


class _RequestIds:
    __slots__ = ("count", "prefix")

    def __init__(self) -> None:
        self.draw()
        os.register_at_fork(after_in_child=self.draw)  # a forked server must not repeat its parent's ids

    def draw(self) -> None:
        digits = f"{(int.from_bytes(os.urandom(16), 'big') & _UUID4_CLEAR) | _UUID4_SET:032x}"
        self.prefix = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-"
        self.count = itertools.count(int(digits[20:], 16))

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.count) * _SPREAD & _LAST_GROUP:012x}"


_request_id = _RequestIds()


class AwsEndpoint:
    """The ASGI endpoint for IAM, STS and EC2. Plain ASGI rather than a framework route: at a few hundred
    microseconds per call, a request object and a router are a noticeable share of the budget."""

    def __init__(self, pipeline: Pipeline, inline: bool) -> None:
        self.pipeline = pipeline
        # SQLite answers in microseconds and serialises writers anyway, so calls run on the event loop: a thread
        # hop would cost more than the call. Other stores wait on the network, so they get a thread.
        self.inline = inline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        body = message.get("body", b"")
        if message.get("more_body", False):
            chunks = [body]
            while message.get("more_body", False):
                message = await receive()
                chunks.append(message.get("body", b""))
            body = b"".join(chunks)
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = _HEADER_NAMES.get(raw_name) or _header_name(raw_name)
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        raw_path = scope.get("raw_path", b"/")
        wire = WireRequest(
            scope["method"],
            "/" if raw_path == b"/" else raw_path.decode("latin-1").split("?", 1)[0],
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            body,
            (scope.get("client") or ("127.0.0.1", 0))[0],
        )
        if self.inline:
            status, body, request_id = self.pipeline.handle(wire)
        else:
            status, body, request_id = await run_in_threadpool(self.pipeline.handle, wire)
        response_headers = [
            (b"content-type", b"text/xml"),
            (b"content-length", str(len(body)).encode()),
            (b"x-amzn-requestid", request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def too_large(scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The answer to a body over the size limit (limits.py), read from the head alone: the service from the
        signature's scope or the query string, since the body is never read."""
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            signed = sigv4.parse(scope["method"], query, headers)
        except AwsError:
            signed = None
        service = spec.detect(signed.service if signed else None, _pairs(query, {}) if query else {})
        # AWS's common errors, shared by every service's API reference: "RequestEntityTooLargeException - Problems
        # with the request at the HTTP level. The request entity is too large. HTTP Status Code: 413".
        failure = AwsError("RequestEntityTooLargeException", "The request entity is too large.")
        request_id = _request_id()
        status, body = xml.serialize_error(service, failure, request_id)
        return status, [(b"content-type", b"text/xml"), (b"x-amzn-requestid", request_id.encode())], body
