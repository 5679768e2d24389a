"""AWS-shaped identifiers, ARNs and secrets, made in one place."""

from __future__ import annotations

import secrets
import string

_UPPER_ALNUM = string.ascii_uppercase + string.digits
_SECRET_CHARS = string.ascii_letters + string.digits + "+/"

# IAM unique-id prefixes (IAM identifiers guide, "Unique ID prefixes").
ROLE_PREFIX = "AROA"
INSTANCE_PROFILE_PREFIX = "AIPA"
POLICY_PREFIX = "ANPA"
USER_PREFIX = "AIDA"
ACCESS_KEY_PREFIX = "AKIA"
TEMPORARY_KEY_PREFIX = "ASIA"


def _upper_alnum(count: int) -> str:
    # One read of the system's random source for the whole id (a choice per character costs a read each). 252 is the
    # largest multiple of 36 below 256, so bytes above it are dropped to keep every character equally likely.
    chars: list[str] = []
    while len(chars) < count:
        chars.extend(_UPPER_ALNUM[byte % 36] for byte in secrets.token_bytes(count + 8) if byte < 252)
    return "".join(chars[:count])


def unique_id(prefix: str) -> str:
    """A 21-character IAM unique id: the prefix and 17 upper-case letters or digits."""
    return prefix + _upper_alnum(21 - len(prefix))


def access_key_id(prefix: str = ACCESS_KEY_PREFIX) -> str:
    return prefix + _upper_alnum(20 - len(prefix))


def secret_access_key() -> str:
    return "".join(secrets.choice(_SECRET_CHARS) for _ in range(40))


def iam_arn(account_id: str, kind: str, path: str, name: str) -> str:
    """`arn:aws:iam::ACCOUNT:KIND/PATH/NAME`; the path starts and ends with a slash."""
    return f"arn:aws:iam::{account_id}:{kind}{path}{name}"


def hex_id(prefix: str, length: int = 17) -> str:
    """EC2-style ids: `i-` + 17 hex digits, `iip-assoc-` + 17 hex digits."""
    return prefix + secrets.token_hex((length + 1) // 2)[:length]
