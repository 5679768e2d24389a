"""The ASGI application: the AWS endpoint at `/`, instance metadata at `/imds/{instance_id}/`, and roleport's own
routes beside them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from roleport import __version__, imds, imds_server
from roleport.auth import sigv4
from roleport.clock import ControlledClock
from roleport.config import Settings
from roleport.console import build_console
from roleport.errors import AwsError
from roleport.pipeline import AwsEndpoint, Clock, Pipeline, system_clock
from roleport.protocol import spec
from roleport.services import iam_common, iam_policies
from roleport.store.db import Store


def build_app(settings: Settings, clock: Clock = system_clock) -> ASGIApp:
    if settings.clock == "controlled" and clock is system_clock:
        clock = ControlledClock()
    store = Store(settings.store_url)
    inline = store.kind == "sqlite"  # as for AWS calls: SQLite answers faster than a thread hop (pipeline.py)
    aws = AwsEndpoint(Pipeline(settings, store, clock), inline=inline)
    metadata = imds.MetadataService(settings, store, clock)

    async def respond(instance_id: str, method: str, path: str, headers: Mapping[str, str]) -> imds.Reply | None:
        if inline:
            return metadata.handle(instance_id, method, path, headers)
        return await run_in_threadpool(metadata.handle, instance_id, method, path, headers)

    metadata_paths = imds_server.PathEndpoint(respond)
    listeners = imds_server.Listeners(settings.host, respond)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        store.create()
        with store.transaction(write=True) as tx:
            iam_policies.seed_aws_managed_policies(tx)
            iam_common.ensure_counters(tx, settings.account_id)
        metadata.load_key()
        yield
        await listeners.close()
        store.dispose()

    async def health(_request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "version": __version__, "services": list(spec.SERVICES), "store": store.kind}
        )

    async def metadata_endpoint(request: Request) -> Response:
        """Where an instance's own metadata listener is (opening it), for `roleport exec`; root credentials only."""
        try:
            _check_root(settings, request, await request.body(), clock)
        except AwsError as failure:
            return _error(failure.code, failure.message, failure.status or 403)
        instance_id = request.path_params["instance_id"]
        account = (
            metadata.account_of(instance_id) if inline else await run_in_threadpool(metadata.account_of, instance_id)
        )
        if account != settings.account_id:
            return _error("InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist", 404)
        port = await listeners.port(instance_id)
        host = request.url.hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return JSONResponse(
            {
                "InstanceId": instance_id,
                "Endpoint": f"http://{host}:{port}/",
                "PathEndpoint": f"{settings.endpoint_url}/imds/{instance_id}/",
            }
        )

    async def clock_endpoint(request: Request) -> Response:
        """Read the server's clock; with --clock controlled, move it ({"advance_seconds": N} or {"set": ISO})."""
        body = await request.body()
        try:
            _check_root(settings, request, body, clock)
            if request.method == "POST":
                _move_clock(clock, body)
        except AwsError as failure:
            return _error(failure.code, failure.message, failure.status or 400)
        mode = "controlled" if isinstance(clock, ControlledClock) else "real"
        return JSONResponse({"mode": mode, "now": clock().isoformat().replace("+00:00", "Z")})

    routes: list[Any] = [
        Route("/_roleport/health", health, methods=["GET"]),
        Route("/_roleport/clock", clock_endpoint, methods=["GET", "POST"]),
        Route("/_roleport/instances/{instance_id}/metadata-endpoint", metadata_endpoint, methods=["GET"]),
        Mount("/console", app=build_console(settings, store, clock)),
    ]
    site = Starlette(routes=routes, lifespan=lifespan)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # AWS SDKs send every IAM, STS and EC2 call to the endpoint's root path.
        if scope["type"] == "http" and scope["path"] == "/":
            await aws(scope, receive, send)
        elif scope["type"] == "http" and scope["path"].startswith(imds_server.PATH_PREFIX):
            await metadata_paths(scope, receive, send)
        else:
            await site(scope, receive, send)

    return app


def _check_root(settings: Settings, request: Request, body: bytes, clock: Clock) -> None:
    """SigV4 by the root key, under any service name in the scope; raises AwsError otherwise."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    query = request.scope.get("query_string", b"").decode("latin-1")
    signed = sigv4.parse(request.method, query, headers)
    if signed is None:
        raise AwsError("MissingAuthenticationToken", "Request is missing Authentication Token", status=403)
    if signed.access_key_id != settings.root_access_key:
        raise AwsError("InvalidClientTokenId", "The security token included in the request is invalid.", status=403)
    raw_path = request.scope.get("raw_path", b"/").decode("latin-1").split("?", 1)[0]
    sigv4.verify(signed, request.method, raw_path, query, headers, body, settings.root_secret_key, system_clock())


def _move_clock(clock: Clock, body: bytes) -> None:
    if not isinstance(clock, ControlledClock):
        raise AwsError(
            "InvalidRequest", "The clock is real: start roleport with --clock controlled to move it.", status=400
        )
    try:
        order = json.loads(body or b"{}")
        if "advance_seconds" in order:
            clock.advance(float(order["advance_seconds"]))
        elif "set" in order:
            clock.set(datetime.fromisoformat(str(order["set"]).replace("Z", "+00:00")))
        else:
            raise ValueError("give advance_seconds or set")
    except (ValueError, TypeError, AttributeError) as problem:
        raise AwsError("InvalidRequest", f"Bad clock request: {problem}", status=400) from None


def _error(code: str, message: str, status: int) -> Response:
    return JSONResponse({"Error": {"Code": code, "Message": message}}, status_code=status)
