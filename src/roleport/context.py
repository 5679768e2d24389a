"""What an operation handler knows about the call it serves: who, when, where, and its transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from roleport.config import Settings
from roleport.store.db import Tx

Params = dict[str, Any]


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


class Authorizer(Protocol):
    def __call__(self, action: str, resource: str, extra: dict[str, list[str]] | None = None) -> None: ...


def _allow_all(action: str, resource: str, extra: dict[str, list[str]] | None = None) -> None:
    return None


class Ctx(NamedTuple):
    """One call as its handler sees it. Immutable; a named tuple rather than a frozen dataclass, whose per-field
    object.__setattr__ cost more than the rest of making it, and one is made for every call."""

    request_id: str
    now: datetime
    settings: Settings
    principal: Principal
    tx: Tx
    # Checks one more permission the call needs besides its own (iam:PassRole for EC2's profile operations) and
    # raises AWS's access error; the pipeline supplies it, for root it allows everything.
    authorize: Authorizer = _allow_all

    @property
    def account_id(self) -> str:
        return self.principal.account_id
