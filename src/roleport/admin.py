"""roleport's own control endpoints under /_roleport/, for tests: the clock, propagation, flush and reset.

Each needs a request signed with the account's root keys (SigV4, any service name in the scope), so only whoever
holds them can move time or wipe state. Answers are JSON; failures are {"Error": {"Code", "Message"}}.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from roleport.auth import sigv4
from roleport.clock import Clock, ControlledClock, system_clock
from roleport.config import Settings
from roleport.errors import AwsError
from roleport.store import journal, schema, seed
from roleport.store.db import Store, hold_setup_lock

# What a reset keeps: the schema's version, the server's own secrets (IMDS token key), the counters, which only
# move forward so that nothing derived before the reset can be mistaken for current after it, and the console's
# sign-ins, which belong to browsers rather than to the account's state (like the root keys, which stay): a console
# signed in as root stays signed in, and an IAM user's session ends anyway, with the user's access key.
_KEPT = {schema.schema_info.name, schema.server_secrets.name, schema.counters.name, schema.console_sessions.name}


def routes(
    settings: Settings,
    store: Store,
    clock: Clock,
    propagation: journal.Propagation,
    on_reset: Callable[[], Awaitable[None]] | None = None,
) -> list[Route]:
    async def call(work: Callable[[], Any]) -> Any:
        return work() if store.kind == "sqlite" else await run_in_threadpool(work)

    async def clock_endpoint(request: Request) -> Response:
        """Read the server's clock; with --clock controlled, move it ({"advance_seconds": N} or {"set": ISO})."""
        body = await _authorized(settings, request)
        if request.method == "POST":
            _move_clock(clock, body)
        mode = "controlled" if isinstance(clock, ControlledClock) else "real"
        return JSONResponse({"mode": mode, "now": _iso(clock())})

    async def propagation_endpoint(request: Request) -> Response:
        """Read the delays and what is still pending; POST sets any of the delays."""
        body = await _authorized(settings, request)
        if request.method == "POST":
            _set_propagation(propagation, body)

        def read() -> list[dict[str, Any]]:
            with store.transaction(write=False) as tx:
                return journal.pending(tx, clock())

        return JSONResponse({**propagation.settings(), "pending": await call(read)})

    async def flush_endpoint(request: Request) -> Response:
        """Make every pending change visible now."""
        await _authorized(settings, request)

        def work() -> int:
            with store.transaction(write=True) as tx:
                count = journal.flush(tx)
            propagation.flushed()
            return count

        return JSONResponse({"flushed_row_changes": await call(work)})

    async def reset_endpoint(request: Request) -> Response:
        """Empty every account's state (roles, profiles, users, instances, sessions...); the root keys stay."""
        await _authorized(settings, request)

        def work() -> None:
            with store.transaction(write=True, journaled=False) as tx:
                hold_setup_lock(tx)  # so a reset and another process's start-up seeding cannot interleave
                for table in reversed(schema.metadata.sorted_tables):
                    if table.name not in _KEPT:
                        tx.execute(delete(table))
                quota_counters = schema.counters.c.name.not_in(["iam", journal.LOCK_COUNTER])
                tx.execute(delete(schema.counters).where(quota_counters))
                seed.seed(tx, settings.account_id)
            propagation.flushed()

        await call(work)
        if on_reset is not None:
            await on_reset()  # e.g. close the metadata listeners of the instances the reset removed
        return JSONResponse({"reset": True})

    def guarded(endpoint: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)  # type: ignore[no-any-return]
            except AwsError as failure:
                return error_response(failure.code, failure.message, failure.status or 400)

        return run

    return [
        Route("/_roleport/clock", guarded(clock_endpoint), methods=["GET", "POST"]),
        Route("/_roleport/propagation", guarded(propagation_endpoint), methods=["GET", "POST"]),
        Route("/_roleport/propagation/flush", guarded(flush_endpoint), methods=["POST"]),
        Route("/_roleport/reset", guarded(reset_endpoint), methods=["POST"]),
    ]


async def _authorized(settings: Settings, request: Request) -> bytes:
    body = await request.body()
    check_root(settings, request, body)
    return body


def check_root(settings: Settings, request: Request, body: bytes) -> None:
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


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        order = json.loads(body or b"{}")
    except ValueError:
        raise AwsError("InvalidRequest", "The body is not JSON.", status=400) from None
    if not isinstance(order, dict):
        raise AwsError("InvalidRequest", "The body must be a JSON object.", status=400)
    return order


def _move_clock(clock: Clock, body: bytes) -> None:
    if not isinstance(clock, ControlledClock):
        raise AwsError(
            "InvalidRequest", "The clock is real: start roleport with --clock controlled to move it.", status=400
        )
    order = _json_object(body)
    try:
        if "advance_seconds" in order:
            seconds = order["advance_seconds"]
            # JSON true is a Python int, and a string of digits is no number of seconds either.
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise ValueError("advance_seconds must be a number")
            clock.advance(float(seconds))
        elif "set" in order:
            if not isinstance(order["set"], str):
                raise ValueError("set must be an ISO 8601 time")
            clock.set(datetime.fromisoformat(order["set"].replace("Z", "+00:00")))
        else:
            raise ValueError("give advance_seconds or set")
    except (ValueError, TypeError, OverflowError) as problem:
        # OverflowError: an integer too large for a float (JSON allows any number of digits).
        raise AwsError("InvalidRequest", f"Bad clock request: {problem}", status=400) from None


_SETTINGS = {"delay_seconds": "delay", "jitter_seconds": "jitter", "association_delay_seconds": "association_delay"}


def _set_propagation(propagation: journal.Propagation, body: bytes) -> None:
    order = _json_object(body)
    unknown = sorted(set(order) - set(_SETTINGS))
    if unknown or not order:
        raise AwsError("InvalidRequest", f"Give any of {', '.join(_SETTINGS)}; unknown: {unknown}", status=400)
    values = {_SETTINGS[name]: value for name, value in order.items()}
    if any(isinstance(value, bool) for value in values.values()):
        raise AwsError("InvalidRequest", "Delays are numbers of seconds.", status=400)
    try:
        propagation.update(**values)
    except ValueError as problem:
        raise AwsError("InvalidRequest", str(problem), status=400) from None


def error_response(code: str, message: str, status: int) -> Response:
    return JSONResponse({"Error": {"Code": code, "Message": message}}, status_code=status)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
