"""A real browser for the console tests: Debian's chromium driven by Playwright, and `roleport serve`, which mounts
the console at /console. No browser is ever downloaded: chromium comes from apt, or the tests skip."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import urlencode

from roleport.testing import RoleportServer
from tests.conftest import ROOT_KEY, ROOT_SECRET

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def console_of(server: RoleportServer) -> str:
    """Where `roleport serve` mounts its web console."""
    return f"{server.endpoint_url}/console"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run, or None. Installs Debian's chromium when it is missing and apt is usable;
    the lock keeps parallel test workers from running apt at the same time."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if os.path.exists(CHROMIUM):
        return None
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return f"{CHROMIUM} is missing and apt-get cannot install it here (not root, or no apt)"
    with open("/tmp/roleport-chromium-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(CHROMIUM):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            install = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "chromium"]
            if subprocess.run(install, env=env, capture_output=True).returncode != 0:
                subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
                subprocess.run(install, env=env, capture_output=True)
    return None if os.path.exists(CHROMIUM) else f"apt-get could not install chromium ({CHROMIUM} is still missing)"


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)


def sign_in(page: Any, console: str, key: str = ROOT_KEY, secret: str = ROOT_SECRET) -> None:
    page.goto(f"{console}/signin")
    page.fill("#access_key_id", key)
    page.fill("#secret_access_key", secret)
    page.click("#sign-in")


class HttpSession:
    """The console over plain HTTP with a cookie jar, signed in through the sign-in form: for timing pages and for
    requests a browser would not send."""

    def __init__(self, console: str, key: str = ROOT_KEY, secret: str = ROOT_SECRET) -> None:
        self.console = console
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        form = self.get("/signin")[1]
        self.post("/signin", {"csrf": _csrf(form), "access_key_id": key, "secret_access_key": secret})
        self.csrf = _csrf(self.get("/iam/roles")[1])

    def get(self, path: str) -> tuple[int, str, dict[str, str]]:
        return self._open(urllib.request.Request(self.console + path))

    def post(self, path: str, form: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self._open(urllib.request.Request(self.console + path, urlencode(form).encode(), headers))

    def server_ms(self, path: str) -> float:
        status, _, headers = self.get(path)
        assert status == 200, (path, status)
        return float(re.fullmatch(r"app;dur=([\d.]+)", headers["server-timing"]).group(1))  # type: ignore[union-attr]

    def _open(self, request: urllib.request.Request) -> tuple[int, str, dict[str, str]]:
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.read().decode(), {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read().decode(), {k.lower(): v for k, v in error.headers.items()}


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)
