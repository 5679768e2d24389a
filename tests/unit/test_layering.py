"""Every import runs downhill: a module may import its own floor or the floors below it, never one above.

The floors, bottom up: the vocabulary (errors, ids, clock, config); the store and the wire protocol; authentication
and authorization with the call context; the operations (services/); the ways in (the AWS pipeline, the metadata
service, the console, the control endpoints); the application; the command line and the test plugin. A module that
registers operations is imported only by the registry's list and the ways in above it, so nothing below the
operations can reach a handler. Imports under `if TYPE_CHECKING:` are types only and are not counted."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import roleport

PACKAGE = Path(roleport.__file__).parent

# Each floor by module-name prefix, the longest prefix deciding; the numbers only order them.
FLOORS: dict[str, int] = {
    "roleport": 0,
    "roleport.errors": 0,
    "roleport.ids": 0,
    "roleport.clock": 0,
    "roleport.config": 0,
    "roleport.store": 1,
    "roleport.protocol": 1,
    "roleport.auth": 2,
    "roleport.context": 2,
    "roleport.services": 3,
    "roleport.pipeline": 4,
    "roleport.read_cache": 4,
    "roleport.aws": 4,
    "roleport.imds": 4,
    "roleport.console": 4,
    "roleport.admin": 4,
    "roleport.access_log": 4,
    "roleport.limits": 4,
    "roleport.app": 5,
    "roleport.server_file": 5,
    "roleport.startup": 5,
    "roleport.find_server": 6,
    "roleport.cli": 6,
    "roleport.testing": 6,
    "roleport.__main__": 6,
}


def floor(module: str) -> int:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in FLOORS:
            return FLOORS[prefix]
    raise KeyError(f"{module} has no floor: add it to FLOORS")


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> set[str]:
    """The roleport modules a file imports at run time, anywhere in it (function-level imports included)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("roleport"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("roleport") and not node.level:
            for alias in node.names:
                # `from roleport.store import schema` imports the module roleport.store.schema.
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    PACKAGE.parent / candidate.replace(".", "/") / "__init__.py"
                ).exists()
                found.add(candidate if is_module else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_floor() -> None:
    for module in MODULES:
        floor(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_downhill(module: str) -> None:
    own = floor(module)
    upward = sorted(name for name in imports_of(MODULES[module]) if floor(name) > own)
    assert not upward, f"{module} (floor {own}) imports from above: {upward}"


def _registers_operations(path: Path) -> bool:
    return "@operation(" in path.read_text()


# Ways in that serve no AWS operation themselves: they may use the services' shared rules (EC2's lifecycle) but
# never a handler module.
NO_HANDLERS = ("roleport.imds", "roleport.app", "roleport.admin")


def test_only_the_ways_in_reach_operation_modules() -> None:
    handlers = {name for name, path in MODULES.items() if _registers_operations(path)}
    assert handlers, "no module registers operations: the check below would prove nothing"
    below = [name for name in MODULES if floor(name) < FLOORS["roleport.services"] or name.startswith(NO_HANDLERS)]
    reaching = {name: sorted(imports_of(MODULES[name]) & handlers) for name in below}
    assert not {name: found for name, found in reaching.items() if found}


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    # A file in the store that imports a handler module must be caught, or the checks above prove nothing.
    fake = tmp_path / "fake.py"
    fake.write_text("from roleport.services import iam_roles\nfrom roleport.store import schema\n")
    assert "roleport.services.iam_roles" in imports_of(fake)
    assert floor("roleport.services.iam_roles") > floor("roleport.store.fake")
