"""IMDSv2 session tokens: stateless, an HMAC over the instance id and the expiry with a key kept in
`server_secrets`, so every server process on the database accepts them and they survive restarts."""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import struct
from datetime import datetime

MAX_TOKEN_TTL = 21600  # "a duration of up to six hours (21,600 seconds)" (EC2 User Guide, IMDSv2 how it works)

_TTL = re.compile(r"[0-9]{1,6}")
_TOKEN_VERSION = b"\x01"
_TOKEN_BYTES = 1 + 8 + 8 + 32  # version, expiry (ms since the epoch), nonce, HMAC-SHA256


def token_ttl(value: str | None) -> int | None:
    """The TTL a token PUT asks for, or None when it is missing or not an integer from 1 to 21600 (→ 400)."""
    if value is None or not _TTL.fullmatch(value.strip()):
        return None
    ttl = int(value)
    return ttl if 1 <= ttl <= MAX_TOKEN_TTL else None


def make_token(key: bytes, instance_id: str, now: datetime, ttl: int) -> str:
    expires = int(now.timestamp() * 1000) + ttl * 1000
    body = struct.pack(">Q", expires) + secrets.token_bytes(8)
    mac = hmac.digest(key, body + instance_id.encode(), "sha256")
    return base64.urlsafe_b64encode(_TOKEN_VERSION + body + mac).decode()


def token_valid(key: bytes, token: str, instance_id: str, now: datetime) -> bool:
    """Made by this server's key for this instance, and not expired: "a token can only be used on the instance it
    was created on" (EC2 User Guide, IMDSv2 how it works)."""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False
    if len(raw) != _TOKEN_BYTES or raw[:1] != _TOKEN_VERSION:
        return False
    body, mac = raw[1:17], raw[17:]
    if not hmac.compare_digest(mac, hmac.digest(key, body + instance_id.encode(), "sha256")):
        return False
    (expires,) = struct.unpack(">Q", body[:8])
    return bool(int(now.timestamp() * 1000) < expires)
