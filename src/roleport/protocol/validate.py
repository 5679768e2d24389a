"""Server-side input validation: the model's constraints, failing the way IAM/STS (ValidationError) and EC2 do."""

from __future__ import annotations

from typing import Any

from botocore.model import StructureShape

from roleport.errors import validation_error
from roleport.protocol import ec2_constraints, query_constraints


def validate(shape: StructureShape | None, params: dict[str, Any], protocol: str) -> None:
    """Check params (already parsed from the wire into Python values: str, int, bool, float, datetime, bytes,
    list, dict keyed by model member names) against the input shape's constraints; raise AwsError on failure."""
    if shape is None:
        return  # eight IAM actions (GetAccountSummary, ...) have no input shape
    if protocol == "ec2":
        ec2_check = ec2_constraints.ec2_check(shape)
        if ec2_check is not None:
            ec2_check(params, "")
        return
    check = query_constraints.query_check(shape)
    if check is None:
        return
    errors: list[str] = []
    check(params, "", errors)
    if errors:
        # Every violation, in member order: no evidence was found that AWS truncates the list.
        raise validation_error(errors)
