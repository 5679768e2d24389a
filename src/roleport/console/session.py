"""Console sign-in sessions: a signed, expiring cookie that names the access key, and per-session CSRF tokens.

The token is HMAC-SHA256 over (access key id, expiry, session id) with a key kept in `server_secrets`, made once by
the first server to need it, and the session id must also be a row of `console_sessions`: signing out deletes the row,
so the cookie stops working everywhere, even a copy of it. Nothing is kept in the server's memory, so every server
process on one database, and a restarted one, accepts the same cookies. The cookie names the key, never the secret;
the key is checked again on every request (actions.py), so a deleted or deactivated access key ends its console
sessions at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select

from roleport.store import schema, sql
from roleport.store.db import Prepared, Store

COOKIE = "roleport_console"
SIGNIN_COOKIE = "roleport_console_signin"  # the nonce the sign-in form's CSRF token is bound to
# AWS console sessions of IAM users last 12 hours (IAM User Guide, "Sign in to the AWS Management Console").
LIFETIME = timedelta(hours=12)
KEY_NAME = "console-session-key"
_VERSION = "v2"  # v1 cookies had no stored session, so sign-out could not end them

_KEY = Prepared(select(schema.server_secrets.c.value).where(schema.server_secrets.c.name == bindparam("name")))
_sessions = schema.console_sessions
_SESSION = Prepared(select(_sessions.c.access_key_id, _sessions.c.expires).where(_sessions.c.id == bindparam("id")))


@dataclass(frozen=True, slots=True)
class Session:
    """A verified cookie: whose key it names, until when, and the CSRF token of this session."""

    access_key_id: str
    expires: datetime
    csrf: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Issues and checks console cookies and CSRF tokens; the signing key is read from the store once."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def key(self) -> bytes:
        if self._key is None:
            with self._lock, self.store.transaction(write=True) as tx:
                self._key = sql.server_secret(tx, KEY_NAME)
        return self._key

    def _mac(self, purpose: str, text: str, key: bytes | None = None) -> str:
        return hmac.new(key or self.key(), f"{purpose}|{text}".encode(), hashlib.sha256).hexdigest()

    def issue(self, access_key_id: str) -> tuple[str, datetime]:
        """A new session's cookie value and its expiry; the session is stored, and expired ones are dropped."""
        now = self.clock()
        expires = now.replace(microsecond=0) + LIFETIME  # whole seconds, as the cookie states it
        session_id = secrets.token_urlsafe(16)
        key = self.key()
        with self.store.transaction(write=True, journaled=False) as tx:
            tx.execute(delete(_sessions).where(_sessions.c.expires <= now))
            tx.execute(insert(_sessions).values(id=session_id, access_key_id=access_key_id, expires=expires))
        payload = f"{_VERSION}.{_b64(access_key_id.encode())}.{int(expires.timestamp())}.{session_id}"
        return f"{payload}.{self._mac('session', payload, key)}", expires

    def read(self, token: str | None) -> Session | None:
        """The session a cookie carries, or None when it is missing, forged, altered, expired or ended."""
        parsed = self._parse(token)
        if parsed is None:
            return None
        access_key_id, expires, session_id = parsed
        with self.store.transaction(write=False) as tx:
            stored = tx.execute(_SESSION, {"id": session_id}).first()
        if stored is None or stored.access_key_id != access_key_id:
            return None  # signed out (or never issued by this database)
        return Session(access_key_id, expires, self._mac("csrf", session_id))

    def end(self, token: str | None) -> None:
        """Sign out: the session is deleted, so this cookie and every copy of it are refused from now on."""
        parsed = self._parse(token)
        if parsed is not None:
            with self.store.transaction(write=True, journaled=False) as tx:
                tx.execute(delete(_sessions).where(_sessions.c.id == parsed[2]))

    def _parse(self, token: str | None) -> tuple[str, datetime, str] | None:
        """(access key id, expiry, session id) of a cookie signed by this server and not expired, else None."""
        if not token or len(token) > 1024:
            return None
        payload, _, mac = token.rpartition(".")
        if not hmac.compare_digest(mac.encode(), self._mac("session", payload).encode()):
            return None
        parts = payload.split(".")
        if len(parts) != 4:
            return None
        version, key_b64, expiry, session_id = parts
        if version != _VERSION or not expiry.isdigit() or not session_id:
            return None
        expires = datetime.fromtimestamp(int(expiry), UTC)
        if expires <= self.clock():
            return None
        try:
            access_key_id = _unb64(key_b64).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return access_key_id, expires, session_id

    def signin_nonce(self) -> str:
        return secrets.token_urlsafe(16)

    def signin_csrf(self, nonce: str) -> str:
        """The sign-in form's token: bound to a nonce in a short-lived cookie, since there is no session yet."""
        return self._mac("signin", nonce)

    @staticmethod
    def same(expected: str, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
