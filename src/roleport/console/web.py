"""The console's plumbing: the Starlette app, the sign-in check and CSRF check every page passes, forms, templates,
and the headers every answer carries (Server-Timing among them, so page times can be measured)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roleport.auth.principal import Principal
from roleport.console import actions
from roleport.console.session import COOKIE, Session, Sessions
from roleport.pipeline import Pipeline

MAX_FORM_BYTES = 1 << 20
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 50
# Banners shown after an action redirects (post/redirect/get); the wording follows the AWS console's.
NOTICES = {
    "role-created": "Role {subject} created.",
    "role-created-profile": "Role {subject} created, with the instance profile {subject}.",
    "role-deleted": "Role {subject} deleted.",
    "launched": "Successfully initiated launch of instance ({subject}).",
    "stopped": "Successfully stopped {subject}.",
    "started": "Successfully started {subject}.",
    "terminated": "Successfully terminated {subject}.",
    "attached": "Successfully attached {subject} to instance {target}.",
    "replaced": "Successfully replaced the IAM role of instance {target} with {subject}.",
    "detached": "Successfully detached the IAM role from instance {target}.",
    "unchanged": "Instance {target} already uses {subject}; nothing changed.",
    "choose-one": "Select one item first.",
    "choose-some": "Select one or more instances first.",
}
Form = dict[str, list[str]]
View = Callable[["Visit"], Response]

_SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
     b"img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]  # fmt: skip


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return "" if value is None else str(value)


def _pretty(document: str) -> str:
    """A policy document as the console shows it: indented JSON (or the text as stored, if it is not JSON)."""
    try:
        return json.dumps(json.loads(document), indent=4)
    except ValueError:
        return document


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("roleport.console", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty"] = _pretty
    env.filters["as_fields"] = lambda values, name: [(name, value) for value in values]
    env.filters["last_segment"] = lambda arn: str(arn or "").rpartition("/")[2]
    return env


@dataclass
class Console:
    pipeline: Pipeline
    sessions: Sessions
    env: jinja2.Environment


@dataclass(frozen=True, slots=True)
class Pager:
    number: int
    next_url: str | None
    previous_url: str | None
    size: int


@dataclass
class Visit:
    """One request as a view sees it: its form or query values, its session, and how to act, render or redirect."""

    console: Console
    request: Request
    form: Form
    session: Session | None
    principal: Principal | None = None
    cookies: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return str(self.request.scope.get("root_path", ""))

    def value(self, name: str, default: str = "") -> str:
        if self.request.method == "POST":
            found = self.form.get(name)
            return found[0] if found else default
        return self.request.query_params.get(name, default)

    def values(self, name: str) -> list[str]:
        if self.request.method == "POST":
            return list(self.form.get(name, []))
        return self.request.query_params.getlist(name)

    @contextmanager
    def act(self, *, write: bool = False) -> Iterator[actions.Caller]:
        if self.session is None:
            raise actions.SignedOut
        client = self.request.client.host if self.request.client else "127.0.0.1"
        with actions.acting(self.console.pipeline, self.session.access_key_id, write=write, client=client) as caller:
            self.principal = caller.principal
            yield caller

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        query = self.request.query_params
        values: dict[str, Any] = {
            "base": self.base,
            "principal": self.principal,
            "csrf": self.session.csrf if self.session else "",
            "account_id": self.console.pipeline.settings.account_id,
            "notice": NOTICES.get(query.get("notice", ""), "").format(
                subject=query.get("subject", ""), target=query.get("target", "")
            ),
            "error": None,
            "section": "",
        }
        values.update(context)
        page = self.console.env.get_template(template).render(values)
        return self._finish(HTMLResponse(page, status_code=status))

    def page_size(self) -> int:
        size = self.value("size")
        return int(size) if size.isdigit() and int(size) in PAGE_SIZES else DEFAULT_PAGE_SIZE

    def pager(self, path: str, next_marker: str | None, param: str = "marker") -> Pager:
        """Links to the next and previous pages of a keyset-paged list: the markers of the pages before this one
        travel in the query string (`trail`), since a marker only goes forward."""
        trail, current, size = self.values("trail"), self.value(param), self.page_size()
        next_url = previous_url = None
        if next_marker:
            query = [(param, next_marker), *(("trail", t) for t in [*trail, current]), ("size", str(size))]
            next_url = f"{self.base}{path}?{urlencode(query)}"
        if current:
            query = [(param, trail[-1] if trail else ""), *(("trail", t) for t in trail[:-1]), ("size", str(size))]
            previous_url = f"{self.base}{path}?{urlencode(query)}"
        return Pager(len(trail) + 1 if current else 1, next_url, previous_url, size)

    def redirect(self, path: str, **params: str) -> Response:
        query = ("&" if "?" in path else "?") + urlencode(params) if params else ""
        return self._finish(RedirectResponse(f"{self.base}{path}{query}", status_code=303))

    def set_cookie(self, name: str, value: str, **options: Any) -> None:
        self.cookies.append((name, value, options))

    def _finish(self, response: Response) -> Response:
        secure = self.request.url.scheme == "https"
        for name, value, options in self.cookies:
            if options.pop("delete", False):
                response.delete_cookie(name, path=self.base or "/", httponly=True, samesite="lax", secure=secure)
            else:
                response.set_cookie(
                    name, value, path=self.base or "/", httponly=True, samesite="lax", secure=secure, **options
                )
        return response


async def _read_form(request: Request) -> Form | None:
    """A url-encoded form body; None when it is too large or of another type."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def endpoint(console: Console, view: View, *, signed_in: bool = True) -> Callable[[Request], Any]:
    """A route for a view: reads the form, checks the session and (on POST) its CSRF token, then runs the view in a
    worker thread, since views use the store synchronously."""

    async def serve(request: Request) -> Response:
        form: Form | None = {}
        if request.method == "POST":
            form = await _read_form(request)
        return await run_in_threadpool(_serve, console, view, request, form, signed_in)

    return serve


def _serve(console: Console, view: View, request: Request, form: Form | None, signed_in: bool) -> Response:
    session = console.sessions.read(request.cookies.get(COOKIE))
    visit = Visit(console, request, form or {}, session)
    if signed_in and session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return visit.redirect("/signin", next=target)
    if form is None:
        return visit.render("error.html", status=400, title="Bad request", message="The form could not be read.")
    if signed_in and session is not None and request.method == "POST" and not Sessions.same(session.csrf, _csrf(form)):
        return refuse_csrf(visit)
    try:
        return view(visit)
    except actions.SignedOut:
        visit.set_cookie(COOKIE, "", delete=True)
        return visit.redirect("/signin", ended="1")


def _csrf(form: Form) -> str | None:
    values = form.get("csrf")
    return values[0] if values else None


def refuse_csrf(visit: Visit) -> Response:
    message = "This form has expired or did not come from this console (missing or wrong CSRF token). Nothing changed."
    return visit.render("error.html", status=403, title="Request refused", message=message)


def safe_next(base: str, target: str) -> str:
    """Where to go after sign-in: only a path inside the console, never another site."""
    if target.startswith(base + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{base}/"


class Timed:
    """Adds Server-Timing (the time from request to response start) and the console's security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                headers += [*_SECURITY_HEADERS, (b"server-timing", f"app;dur={elapsed:.1f}".encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
