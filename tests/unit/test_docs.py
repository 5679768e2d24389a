"""The README's "What is served" names every operation roleport registers, and nothing it does not serve."""

from __future__ import annotations

import re
from pathlib import Path

from roleport.protocol import spec
from roleport.services import registry

README = Path(__file__).resolve().parents[2] / "README.md"


def _served_section() -> str:
    text = README.read_text()
    start = text.index("## What is served")
    return text[start : text.index("\n## ", start + 1)]


def _named_operations(section: str) -> set[str]:
    """Backticked names in the section that are operations of a service roleport speaks."""
    known = {name for service in ("iam", "sts", "ec2") for name in spec.service_model(service).operation_names}
    return {name for name in re.findall(r"`([A-Z][A-Za-z0-9]+)`", section) if name in known}


def test_the_readme_names_every_registered_operation() -> None:
    registered = {name for _service, name in registry.operations()}
    assert _named_operations(_served_section()) == registered


def test_the_check_sees_a_missing_operation() -> None:
    section = _served_section().replace("`ListPolicyTags`", "ListPolicyTags")
    assert "ListPolicyTags" not in _named_operations(section)
