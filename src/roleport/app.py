"""The ASGI application: the AWS endpoint at `/`, instance metadata at `/imds/{instance_id}/`, and roleport's own
routes beside them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from roleport import __version__, admin, limits
from roleport.clock import Clock, ControlledClock, system_clock
from roleport.config import Settings
from roleport.console import build_console
from roleport.errors import AwsError
from roleport.imds import service as imds_service
from roleport.imds import transport
from roleport.imds.replies import Reply, error
from roleport.pipeline import AwsEndpoint, Pipeline
from roleport.protocol import spec
from roleport.store import journal, seed
from roleport.store.db import Store, hold_setup_lock

log = logging.getLogger("roleport")
# How often the server looks for terminated instances whose metadata listeners are still open.
LISTENER_SWEEP_SECONDS = 1.0


def build_app(settings: Settings, clock: Clock = system_clock) -> ASGIApp:
    if settings.clock == "controlled" and clock is system_clock:
        clock = ControlledClock()
    propagation = journal.Propagation(
        clock, settings.propagation_delay, settings.propagation_jitter, settings.association_delay
    )
    store = Store(settings.store_url, journal=propagation.journal)
    inline = store.kind == "sqlite"  # as for AWS calls: SQLite answers faster than a thread hop (pipeline.py)
    aws = AwsEndpoint(Pipeline(settings, store, clock), inline=inline)
    metadata = imds_service.MetadataService(settings, store, clock)

    async def respond(instance_id: str, method: str, path: str, headers: Mapping[str, str]) -> Reply | None:
        if inline:
            return metadata.handle(instance_id, method, path, headers)
        return await run_in_threadpool(metadata.handle, instance_id, method, path, headers)

    metadata_paths = transport.PathEndpoint(respond, settings.metadata_host)
    listeners = transport.Listeners(settings.metadata_host, respond, request_timeout=settings.request_timeout)

    async def retire_listeners() -> None:
        """Close the listeners of instances that are terminated or gone. Instances change state in the store, by
        any server process on it and with the passing of (server) time, so this looks rather than being told."""
        open_ids = listeners.open()
        if open_ids:
            ended = metadata.ended(open_ids) if inline else await run_in_threadpool(metadata.ended, open_ids)
            await listeners.retire(ended)

    async def sweep() -> None:
        while True:
            await asyncio.sleep(LISTENER_SWEEP_SECONDS)
            try:
                await retire_listeners()
            except Exception:  # a store hiccup must not end the sweeping for good
                log.exception("closing the listeners of terminated instances failed")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        store.create()
        with store.transaction(write=True, journaled=False) as tx:
            hold_setup_lock(tx)  # another process starting on the database may be seeding it too
            seed.seed(tx, settings.account_id)
        metadata.load_key()
        sweeper = asyncio.create_task(sweep())
        yield
        sweeper.cancel()
        await listeners.close()
        store.dispose()

    async def health(_request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "version": __version__, "services": list(spec.SERVICES), "store": store.kind}
        )

    async def metadata_endpoint(request: Request) -> Response:
        """Where an instance's own metadata listener is (opening it), for `roleport exec`; root credentials only."""
        try:
            admin.check_root(settings, request, await request.body())
        except AwsError as failure:
            return admin.error_response(failure.code, failure.message, failure.status or 403)
        instance_id = request.path_params["instance_id"]
        account = (
            metadata.account_of(instance_id) if inline else await run_in_threadpool(metadata.account_of, instance_id)
        )
        if account != settings.account_id:
            return admin.error_response(
                "InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist", 404
            )
        ended = metadata.ended([instance_id]) if inline else await run_in_threadpool(metadata.ended, [instance_id])
        if ended:  # a terminated instance never answers again: no listener to open (and to sweep away at once)
            message = f"The instance '{instance_id}' is terminated and has no metadata service."
            return admin.error_response("IncorrectInstanceState", message, 400)
        host, port = await listeners.address(instance_id)
        if host in ("0.0.0.0", "::"):  # bound to every address: the one the caller reached this server at will do
            host = request.url.hostname or "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return JSONResponse(
            {
                "InstanceId": instance_id,
                "Endpoint": f"http://{host}:{port}/",
                "PathEndpoint": f"{settings.endpoint_url}/imds/{instance_id}/",
            }
        )

    routes: list[Any] = [
        Route("/_roleport/health", health, methods=["GET"]),
        *admin.routes(settings, store, clock, propagation, on_reset=retire_listeners),
        Route("/_roleport/instances/{instance_id}/metadata-endpoint", metadata_endpoint, methods=["GET"]),
        Mount("/console", app=build_console(settings, store, clock)),
    ]
    site = Starlette(routes=routes, lifespan=lifespan)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # AWS SDKs send every IAM, STS and EC2 call to the endpoint's root path.
        if scope["type"] == "http" and scope["path"] == "/":
            await aws(scope, receive, send)
        elif scope["type"] == "http" and scope["path"].startswith(transport.PATH_PREFIX):
            await metadata_paths(scope, receive, send)
        else:
            await site(scope, receive, send)

    return limits.BodyLimit(app, too_large)


def too_large(scope: Scope) -> limits.Refusal:
    """Each route's own way of saying a body is too large: the AWS endpoint as AWS does, metadata as IMDS's error
    page, roleport's JSON routes in their JSON envelope, the console as a page."""
    path = scope["path"]
    if path == "/":
        return limits.Refusal(*AwsEndpoint.too_large(scope))
    if path.startswith(transport.PATH_PREFIX):
        page = error(413)
        return limits.Refusal(413, [(b"content-type", page.content_type.encode())], page.body)
    if path.startswith("/console"):
        body = b"<!DOCTYPE html><title>413 Request Entity Too Large</title><h1>413 Request Entity Too Large</h1>"
        return limits.Refusal(413, [(b"content-type", b"text/html; charset=utf-8")], body)
    response = admin.error_response("RequestEntityTooLargeException", "The request entity is too large.", 413)
    return limits.Refusal(413, [(b"content-type", b"application/json")], response.body)
