"""The table of operations roleport serves: each a plain handler registered once under its service and name, with its
whole contract (read or write, what it is authorized against and with which condition keys, whether its answer may
be kept) declared in the same @operation line, so the pipeline needs no operation's name."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from roleport.auth.request_keys import RequestKeys
from roleport.auth.resources import Finder, Lookup
from roleport.context import Ctx, Params

if TYPE_CHECKING:
    from roleport.auth.access import Access

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

# The default for `write`: an operation named as a read changes nothing.
_READ_PREFIXES = ("Get", "List", "Describe", "Simulate")


@dataclass(frozen=True, slots=True)
class OperationSpec:
    service: str
    name: str
    handler: Handler
    write: bool  # whether the handler changes state: SQLite takes its write lock up front for these
    resource: Finder  # what the call is authorized against
    condition_keys: tuple[RequestKeys, ...]  # the action's own keys the call adds to the request context
    authorize: bool  # False where the call needs no permission or its handler weighs it itself
    cacheable: bool  # whether the read cache may keep its answer (read_cache.py)
    single_statement: bool  # the handler runs exactly one statement, so root's call needs no explicit transaction
    # Where the declaration knowingly differs from the Service Authorization Reference: why, with the AWS page
    # that says so; tests/unit/test_registry.py holds every other declaration to the reference.
    deviation: str = ""

    @property
    def action(self) -> str:
        return f"{self.service}:{self.name}"

    def authorize_call(self, access: Access, params: Params) -> None:
        """Check the caller may make this call on each resource it acts on; raises AWS's access error."""
        look = Lookup(access.tx, access.principal, access.region, access.generation())
        extra: dict[str, list[str]] = {}
        for keys in self.condition_keys:
            extra.update(keys.read(params))
        for resource in self.resource(look, params):
            access.check(self.action, resource, extra)


_OPERATIONS: dict[tuple[str, str], OperationSpec] = {}


def operation(
    service: str,
    name: str,
    *,
    resource: Finder,
    condition_keys: tuple[RequestKeys, ...] = (),
    write: bool | None = None,
    authorize: bool = True,
    cacheable: bool | None = None,
    single_statement: bool = False,
    deviation: str = "",
) -> Callable[[Handler], Handler]:
    """Register a handler. `write` defaults to the name's prefix (Get/List/Describe/Simulate read); `cacheable`
    defaults to an IAM read, since IAM reads answer from stored rows alone (IAM is read-after-write consistent), so
    the same request gives the same answer while the store is unchanged: pass False for a read that weighs the
    clock."""
    is_write = not name.startswith(_READ_PREFIXES) if write is None else write

    def register(handler: Handler) -> Handler:
        key = (service, name)
        if key in _OPERATIONS:
            raise RuntimeError(f"{service}:{name} is registered twice")
        _OPERATIONS[key] = OperationSpec(
            service,
            name,
            handler,
            write=is_write,
            resource=resource,
            condition_keys=condition_keys,
            authorize=authorize,
            cacheable=service == "iam" and not is_write if cacheable is None else cacheable,
            single_statement=single_statement,
            deviation=deviation,
        )
        return handler

    return register


def operations() -> Mapping[tuple[str, str], OperationSpec]:
    for module in MODULES:
        importlib.import_module(module)
    return _OPERATIONS
