"""What an operation handler knows about the call it serves: who, when, where, and its transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from roleport.config import Settings
from roleport.store.db import Tx

Params = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity a request was signed by."""

    kind: str  # "root", "user" or "assumed-role"
    arn: str
    user_id: str
    account_id: str


@dataclass(frozen=True, slots=True)
class Ctx:
    request_id: str
    now: datetime
    settings: Settings
    principal: Principal
    tx: Tx

    @property
    def account_id(self) -> str:
        return self.principal.account_id
