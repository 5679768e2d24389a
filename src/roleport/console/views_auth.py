"""Signing in with an access key pair (the root user's or an IAM user's), and signing out."""

from __future__ import annotations

from starlette.responses import Response

from roleport.console import actions
from roleport.console.session import COOKIE, LIFETIME, SIGNIN_COOKIE, Sessions
from roleport.console.web import Visit, safe_next

SIGNIN_FAILED = "Your authentication information is incorrect: the access key ID or secret access key is not valid."
SIGNIN_EXPIRED = "This sign-in form has expired or did not come from this console (CSRF check). Sign in again."
SIGNIN_NONCE_SECONDS = 3600


def home(visit: Visit) -> Response:
    return visit.redirect("/iam/roles" if visit.session else "/signin")


def signin(visit: Visit) -> Response:
    sessions = visit.console.sessions
    if visit.request.method == "POST":
        nonce = visit.request.cookies.get(SIGNIN_COOKIE, "")
        key, secret = visit.value("access_key_id").strip(), visit.value("secret_access_key").strip()
        if not nonce or not Sessions.same(sessions.signin_csrf(nonce), visit.value("csrf")):
            return _form(visit, key=key, error=SIGNIN_EXPIRED, status=403)
        pipeline = visit.console.pipeline
        with pipeline.store.transaction(write=False) as tx:
            principal = actions.check_key_pair(tx, pipeline.settings, key, secret, pipeline.clock())
        if principal is not None:
            token, _ = sessions.issue(key)
            visit.set_cookie(COOKIE, token, max_age=int(LIFETIME.total_seconds()))
            visit.set_cookie(SIGNIN_COOKIE, "", delete=True)
            return visit.redirect(safe_next(visit.base, visit.value("next"))[len(visit.base) :])
        return _form(visit, key=key, error=SIGNIN_FAILED, status=401)
    return _form(visit, key="", error=None, status=200)


def _form(visit: Visit, *, key: str, error: str | None, status: int) -> Response:
    nonce = visit.console.sessions.signin_nonce()
    visit.set_cookie(SIGNIN_COOKIE, nonce, max_age=SIGNIN_NONCE_SECONDS)
    ended = visit.value("ended") == "1"
    return visit.render(
        "signin.html",
        status=status,
        csrf=visit.console.sessions.signin_csrf(nonce),
        key=key,
        next=visit.value("next"),
        error=error or ("Your session has ended: its access key is no longer valid. Sign in again." if ended else None),
        signed_out=visit.value("signed_out") == "1",
    )


def signout(visit: Visit) -> Response:
    visit.console.sessions.end(visit.request.cookies.get(COOKIE))  # server-side, so a copied cookie stops working too
    visit.set_cookie(COOKIE, "", delete=True)
    return visit.redirect("/signin", signed_out="1")


def not_found(visit: Visit) -> Response:
    return visit.render("error.html", status=404, title="Page not found", message="There is no such console page.")
