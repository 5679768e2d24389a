"""The table of operations roleport serves: each a plain handler registered once under its service and name."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from roleport.context import Ctx, Params

Handler = Callable[[Ctx, Params], dict[str, Any]]

# The modules whose handlers make up the API; importing one registers its operations.
MODULES: tuple[str, ...] = (
    "roleport.services.iam_profiles",
    "roleport.services.iam_roles",
    "roleport.services.iam_role_policies",
    "roleport.services.iam_policies",
    "roleport.services.iam_users",
    "roleport.services.iam_user_policies",
    "roleport.services.iam_access_keys",
    "roleport.services.iam_simulate",
    "roleport.services.sts",
    "roleport.services.ec2_instances",
    "roleport.services.ec2_instance_states",
    "roleport.services.ec2_associations",
)

_READ_PREFIXES = ("Get", "List", "Describe", "Simulate")


@dataclass(frozen=True, slots=True)
class OperationSpec:
    service: str
    name: str
    handler: Handler
    write: bool  # whether the handler changes state: SQLite takes its write lock up front for these

    @property
    def action(self) -> str:
        return f"{self.service}:{self.name}"


_OPERATIONS: dict[tuple[str, str], OperationSpec] = {}


def operation(service: str, name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        key = (service, name)
        if key in _OPERATIONS:
            raise RuntimeError(f"{service}:{name} is registered twice")
        _OPERATIONS[key] = OperationSpec(service, name, handler, write=not name.startswith(_READ_PREFIXES))
        return handler

    return register


def operations() -> Mapping[tuple[str, str], OperationSpec]:
    for module in MODULES:
        importlib.import_module(module)
    return _OPERATIONS
