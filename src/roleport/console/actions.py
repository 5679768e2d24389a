"""How the console makes AWS calls: as the signed-in principal, through the pipeline's own authorization and
handlers (pipeline.Pipeline.run), never over HTTP to ourselves.

One console action (a page, or a form like "Create role") is one transaction: its calls are checked and run one by
one, as the API would run them, and if any fails (AccessDenied included) the whole action rolls back and changes
nothing.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from roleport.auth import principal as principals
from roleport.auth import sigv4
from roleport.auth.principal import Principal
from roleport.config import Settings
from roleport.errors import AwsError
from roleport.pipeline import Pipeline
from roleport.protocol import spec, validate
from roleport.store.db import Tx


class SignedOut(Exception):
    """The session's access key no longer signs anything (deleted, deactivated, or not the root key any more)."""


def _signed(settings: Settings, access_key_id: str) -> sigv4.SignedRequest:
    # principal.resolve reads only the key id and the session token of a request; the console signs in with
    # long-term keys, which carry no token (so temporary ASIA keys are refused, as resolve refuses them untokened).
    return sigv4.SignedRequest(
        access_key_id=access_key_id,
        scope_date="",
        region=settings.region,
        service="iam",
        signed_headers=(),
        signature="",
        amz_date="",
        security_token=None,
        presigned=False,
        expires=None,
    )


def check_key_pair(tx: Tx, settings: Settings, access_key_id: str, secret: str, now: datetime) -> Principal | None:
    """The principal whose key pair this is, or None: an unknown or inactive key and a wrong secret alike."""
    try:
        principal, expected = principals.resolve(tx, settings, _signed(settings, access_key_id), "iam", now)
    except AwsError:
        return None
    return principal if hmac.compare_digest(expected.encode(), secret.encode()) else None


@dataclass
class Caller:
    """One console action's calls, made as one principal in one transaction."""

    pipeline: Pipeline
    tx: Tx
    principal: Principal
    now: datetime
    client: str
    writable: bool

    def call(self, service: str, operation: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one operation exactly as the API would: model validation, the caller's policies, the handler."""
        params = params or {}
        handler = self.pipeline.operations[(service, operation)]
        if handler.write and not self.writable:
            raise RuntimeError(f"{service}:{operation} changes state; the console action must be a write")
        model = spec.operation_model(service, operation)
        if model.input_shape is not None:
            validate.validate(model.input_shape, params, spec.service_model(service).protocol)
        request_id = str(uuid.uuid4())
        return self.pipeline.run(
            self.tx, self.principal, handler, params, request_id=request_id, now=self.now, client=self.client
        )

    def attempt(self, service: str, operation: str, params: dict[str, Any] | None = None) -> Outcome:
        """A read whose failure a page shows in place (e.g. AccessDenied on one section) instead of failing."""
        try:
            return Outcome(self.call(service, operation, params), None)
        except AwsError as error:
            return Outcome({}, error)

    def attempt_pages(
        self, service: str, operation: str, params: dict[str, Any], key: str
    ) -> tuple[list[Any], AwsError | None]:
        try:
            return self.pages(service, operation, params, key), None
        except AwsError as error:
            return [], error

    def pages(self, service: str, operation: str, params: dict[str, Any], key: str) -> list[Any]:
        """Every item of an IAM list call, following its Marker."""
        items: list[Any] = []
        marker: str | None = None
        while True:
            result = self.call(service, operation, {**params, **({"Marker": marker} if marker else {})})
            items += result.get(key, [])
            marker = result.get("Marker") if result.get("IsTruncated") else None
            if not marker:
                return items


@dataclass(frozen=True, slots=True)
class Outcome:
    result: dict[str, Any]
    error: AwsError | None


@contextmanager
def acting(pipeline: Pipeline, access_key_id: str, *, write: bool, client: str) -> Iterator[Caller]:
    """A transaction in which the session's principal makes calls; raises SignedOut if its key no longer holds."""
    now = pipeline.clock()
    with pipeline.store.transaction(write) as tx:
        try:
            principal, _ = principals.resolve(
                tx, pipeline.settings, _signed(pipeline.settings, access_key_id), "iam", now
            )
        except AwsError:
            raise SignedOut from None
        yield Caller(pipeline, tx, principal, now, client, write)
