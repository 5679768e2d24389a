"""The principal behind a request: who signed it, found from the access key, with the secret its signatures must be
made with."""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select

from roleport import ids
from roleport.auth import sessions
from roleport.auth.sigv4 import SignedRequest
from roleport.config import Settings
from roleport.errors import AwsError
from roleport.store import schema
from roleport.store.db import Prepared, Tx


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity a request was signed by."""

    kind: str  # "root", "user" or "assumed-role"
    arn: str  # arn:aws:iam::A:root, arn:aws:iam::A:user/P/N, arn:aws:sts::A:assumed-role/ROLE/SESSION
    user_id: str  # the account id, AIDA…, or AROA…:SESSION, as GetCallerIdentity gives them
    account_id: str
    name: str = ""  # the user's or the role's name
    entity_id: str = ""  # the users or roles row behind it
    entity_arn: str = ""  # the user's or the role's own ARN (aws:PrincipalArn for a role session is the role ARN)
    session_name: str = ""
    session_policy: str | None = None  # a JSON list of the session's policy documents
    token_issued: datetime | None = None
    source_instance: str | None = None  # the instance whose metadata service issued the credentials


_USER_KEY = Prepared(
    select(
        schema.access_keys.c.secret,
        schema.access_keys.c.status,
        schema.users.c.id,
        schema.users.c.name,
        schema.users.c.path,
        schema.users.c.account_id,
    )
    .join(schema.users, schema.users.c.id == schema.access_keys.c.user_id)
    .where(schema.access_keys.c.id == bindparam("key"))
)


def invalid_token(service: str) -> AwsError:
    # EC2 answers every credential failure with AuthFailure (EC2 error codes); IAM and STS name the token.
    if service == "ec2":
        return AwsError("AuthFailure", "AWS was not able to validate the provided access credentials", status=401)
    return AwsError("InvalidClientTokenId", "The security token included in the request is invalid.", status=403)


def expired_token(service: str) -> AwsError:
    if service == "ec2":
        return invalid_token(service)
    return AwsError("ExpiredToken", "The security token included in the request is expired", status=403)


def root(settings: Settings) -> Principal:
    return _root(settings.account_id)


@functools.lru_cache(maxsize=64)
def _root(account: str) -> Principal:
    # Principals are immutable, so every root call can share one (a frozen dataclass costs microseconds to make).
    return Principal(kind="root", arn=f"arn:aws:iam::{account}:root", user_id=account, account_id=account)


def root_key(settings: Settings, signed: SignedRequest) -> tuple[Principal, str] | None:
    """The root principal and its secret when the request is signed with the root key; resolved without the store."""
    if signed.access_key_id == settings.root_access_key and signed.security_token is None:
        return root(settings), settings.root_secret_key
    return None


def resolve(
    tx: Tx | None, settings: Settings, signed: SignedRequest, service: str, now: datetime
) -> tuple[Principal, str]:
    """The principal behind the request's access key; unknown, inactive, deleted or expired keys are refused the way
    AWS refuses them. The signature itself is checked afterwards with the secret returned here."""
    known = root_key(settings, signed)
    if known is not None:
        return known
    key = signed.access_key_id
    if tx is None:
        raise invalid_token(service)
    if key.startswith(ids.TEMPORARY_KEY_PREFIX):
        return _session(tx, signed, service, now)
    if signed.security_token is not None:
        raise invalid_token(service)  # a long-term key never carries a session token
    row = tx.execute(_USER_KEY, {"key": key}).first()
    if row is None or row.status != "Active":
        raise invalid_token(service)
    arn = ids.iam_arn(row.account_id, "user", row.path, row.name)
    principal = Principal(
        kind="user",
        arn=arn,
        user_id=row.id,
        account_id=row.account_id,
        name=row.name,
        entity_id=row.id,
        entity_arn=arn,
    )
    return principal, row.secret


def _session(tx: Tx, signed: SignedRequest, service: str, now: datetime) -> tuple[Principal, str]:
    session = sessions.find(tx, signed.access_key_id)
    token = signed.security_token
    if session is None or token is None or not hmac.compare_digest(session.token.encode(), token.encode()):
        raise invalid_token(service)
    if session.expiration <= now:
        raise expired_token(service)
    role_name = session.role_arn.rsplit("/", 1)[-1]
    principal = Principal(
        kind="assumed-role",
        arn=sessions.assumed_role_arn(session.account_id, role_name, session.session_name),
        user_id=f"{session.role_id}:{session.session_name}",
        account_id=session.account_id,
        name=role_name,
        entity_id=session.role_id,
        entity_arn=session.role_arn,
        session_name=session.session_name,
        session_policy=session.session_policy,
        token_issued=session.create_date,
        source_instance=session.instance_id,
    )
    return principal, session.secret
