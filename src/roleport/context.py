"""What an operation handler knows about the call it serves: who, when, where, and its transaction."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from roleport.config import Settings
from roleport.store.db import Tx

if TYPE_CHECKING:  # a type only: the vocabulary layer must not import auth at run time
    from roleport.auth.principal import Principal

Params = dict[str, Any]


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
