"""The ASGI application: the AWS endpoint, health, and the request pipeline from bytes to bytes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from roleport import __version__
from roleport.auth import principal as principals
from roleport.auth import sigv4
from roleport.config import Settings
from roleport.context import Ctx
from roleport.errors import AwsError
from roleport.protocol import query, spec, validate, xml
from roleport.services import iam_policies, registry
from roleport.store.db import Store

log = logging.getLogger("roleport")

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WireRequest:
    method: str
    raw_path: str
    query_string: str
    headers: dict[str, str]
    body: bytes


class Pipeline:
    """One AWS call: detect the service, authenticate, parse, validate, run the handler in a transaction, serialize."""

    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.operations = registry.operations()

    def handle(self, request: WireRequest) -> tuple[int, bytes, str]:
        request_id = str(uuid.uuid4())
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
        principal, secret = principals.resolve(self.settings, signed.access_key_id, service)
        sigv4.verify(
            signed, request.method, request.raw_path, request.query_string, request.headers, request.body, secret, now
        )
        operation, params = query.parse(service, form)
        if operation.input_shape is not None:
            validate.validate(operation.input_shape, params, spec.service_model(service).protocol)
        handler = self.operations.get((service, operation.name))
        if handler is None:
            raise AwsError("NotImplemented", f"roleport does not implement {service}:{operation.name}.", status=501)
        if params.get("DryRun"):
            # EC2's DryRun asks only whether the caller may make the call; it changes and checks nothing else.
            raise AwsError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", status=412)
        with self.store.transaction(handler.write) as tx:
            ctx = Ctx(request_id=rid, now=now, settings=self.settings, principal=principal, tx=tx)
            result = handler.handler(ctx, params)
        return xml.serialize(service, operation, result, rid)


def _form(request: WireRequest) -> dict[str, str]:
    """Query-string and form-body parameters together, as AWS accepts either for these protocols."""
    pairs = parse_qsl(request.query_string, keep_blank_values=True) if request.query_string else []
    content_type = request.headers.get("content-type", "application/x-www-form-urlencoded")
    if request.body and content_type.startswith("application/x-www-form-urlencoded"):
        try:
            pairs += parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise AwsError("MalformedQueryString", "The request body is not valid UTF-8.", status=400) from None
    return dict(pairs)


def _headers(request: Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def build_app(settings: Settings, clock: Clock = system_clock) -> Starlette:
    store = Store(settings.store_url)
    pipeline: dict[str, Pipeline] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        store.create()
        with store.transaction(write=True) as tx:
            iam_policies.seed_aws_managed_policies(tx)
        pipeline["aws"] = Pipeline(settings, store, clock)
        yield
        store.dispose()

    async def aws_endpoint(request: Request) -> Response:
        wire = WireRequest(
            method=request.method,
            raw_path=request.scope.get("raw_path", b"/").decode("latin-1").split("?", 1)[0],
            query_string=request.scope.get("query_string", b"").decode("latin-1"),
            headers=_headers(request),
            body=await request.body(),
        )
        if store.kind == "sqlite":
            # SQLite answers in microseconds and serialises writers anyway, so run on the event loop: a thread hop
            # would cost more than the whole call. Other stores wait on the network, so they get a thread.
            status, body, request_id = pipeline["aws"].handle(wire)
        else:
            status, body, request_id = await run_in_threadpool(pipeline["aws"].handle, wire)
        return Response(body, status_code=status, media_type="text/xml", headers={"x-amzn-RequestId": request_id})

    async def health(_request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "version": __version__, "services": list(spec.SERVICES), "store": store.kind}
        )

    routes: list[Any] = [
        Route("/_roleport/health", health, methods=["GET"]),
        Route("/", aws_endpoint, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
