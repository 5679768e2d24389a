"""Console sessions live in the store: signing out ends a session for every copy of its cookie, on every server
process on the database, and a session outlives a server restart (issue 12's probe: sign-out only deleted the
browser's cookie, so a copy stayed valid for 12 hours)."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from http.cookiejar import CookieJar
from urllib.parse import urlsplit

import pytest

from roleport.testing import RoleportServer
from tests.e2e.console_browser import HttpSession
from tests.e2e.test_limits import signed_post as root_post

COOKIE = "roleport_console"


def session_cookie(session: HttpSession) -> str:
    """The session cookie's value, as someone who copied it from the browser would have it."""
    for handler in session.opener.handlers:
        jar = getattr(handler, "cookiejar", None)
        if isinstance(jar, CookieJar):
            return next(cookie.value for cookie in jar if cookie.name == COOKIE and cookie.value)
    raise AssertionError("no cookie jar")


def visit_with(server: RoleportServer, cookie: str, path: str = "/console/iam/roles") -> tuple[int, str]:
    """GET a console page with only this cookie, without following redirects: (status, Location)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Cookie": f"{COOKIE}={cookie}"})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("Location") or ""
    finally:
        connection.close()


def signed_out(answer: tuple[int, str]) -> bool:
    status, location = answer
    return status == 303 and urlsplit(location).path == "/console/signin"


@pytest.fixture
def servers(
    backend: str | None, make_server: Callable[..., RoleportServer], tmp_path_factory: pytest.TempPathFactory
) -> list:
    """Two server processes on one database (one SQLite file, or one PostgreSQL database)."""
    data_dir = tmp_path_factory.mktemp("console-sessions") / "data"
    return [make_server(data_dir=data_dir, database_url=backend) for _ in range(2)]


def test_a_copied_cookie_is_refused_after_sign_out(servers: list[RoleportServer]) -> None:
    first, second = servers
    browser = HttpSession(f"{first.endpoint_url}/console")
    copied = session_cookie(browser)
    assert visit_with(first, copied)[0] == 200
    assert visit_with(second, copied)[0] == 200  # one session, whichever process serves it
    status, page, _ = browser.post("/signout", {"csrf": browser.csrf})
    assert status == 200 and 'id="signed-out"' in page
    assert signed_out(visit_with(first, copied))
    assert signed_out(visit_with(second, copied))


def test_sign_out_ends_only_its_own_session(servers: list[RoleportServer]) -> None:
    first, second = servers
    leaving, staying = HttpSession(f"{first.endpoint_url}/console"), HttpSession(f"{second.endpoint_url}/console")
    leaving_cookie, staying_cookie = session_cookie(leaving), session_cookie(staying)
    leaving.post("/signout", {"csrf": leaving.csrf})
    assert signed_out(visit_with(second, leaving_cookie))
    assert visit_with(first, staying_cookie)[0] == 200


def test_a_session_outlives_a_restart_and_a_reset(servers: list[RoleportServer]) -> None:
    first, _ = servers
    browser = HttpSession(f"{first.endpoint_url}/console")
    cookie = session_cookie(browser)
    first.stop()
    first.start()
    assert visit_with(first, cookie)[0] == 200
    root_post(
        f"{first.endpoint_url}/_roleport/reset"
    )  # empties the account's state; a browser's sign-in is not part of it
    assert visit_with(first, cookie)[0] == 200
