"""The ASGI application: the AWS endpoint at `/`, and roleport's own routes beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from roleport import __version__
from roleport.config import Settings
from roleport.pipeline import AwsEndpoint, Clock, Pipeline, system_clock
from roleport.protocol import spec
from roleport.services import iam_policies
from roleport.store.db import Store


def build_app(settings: Settings, clock: Clock = system_clock) -> ASGIApp:
    store = Store(settings.store_url)
    aws = AwsEndpoint(Pipeline(settings, store, clock), inline=store.kind == "sqlite")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        store.create()
        with store.transaction(write=True) as tx:
            iam_policies.seed_aws_managed_policies(tx)
        yield
        store.dispose()

    async def health(_request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "version": __version__, "services": list(spec.SERVICES), "store": store.kind}
        )

    routes: list[Any] = [Route("/_roleport/health", health, methods=["GET"])]
    site = Starlette(routes=routes, lifespan=lifespan)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # AWS SDKs send every IAM, STS and EC2 call to the endpoint's root path.
        if scope["type"] == "http" and scope["path"] == "/":
            await aws(scope, receive, send)
        else:
            await site(scope, receive, send)

    return app
