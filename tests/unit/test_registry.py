"""The operation table: every handler is named for its operation and every operation exists in the model."""

from __future__ import annotations

import pytest
from botocore import xform_name

from roleport.protocol import spec
from roleport.services import registry


@pytest.mark.parametrize(("service", "name"), sorted(registry.operations()))
def test_handler_is_named_for_its_operation(service: str, name: str) -> None:
    operation = registry.operations()[(service, name)]
    assert operation.handler.__name__ == xform_name(name)
    assert name in spec.operation_names(service)


def test_reads_do_not_take_the_write_lock() -> None:
    operations = registry.operations()
    assert operations[("iam", "GetInstanceProfile")].write is False
    assert operations[("iam", "ListRoles")].write is False
    assert operations[("iam", "CreateInstanceProfile")].write is True
