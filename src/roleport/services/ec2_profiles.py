"""Instance profiles as EC2 sees them (through the propagation delay, with the iam:PassRole check a launch or
association makes) and the association rows that tie a profile to an instance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update

from roleport import ids
from roleport.context import Ctx
from roleport.errors import AwsError
from roleport.store import journal, schema

instances = schema.ec2_instances
associations = schema.ec2_associations


@dataclass(frozen=True, slots=True)
class Profile:
    arn: str
    id: str


def resolve_profile(ctx: Ctx, spec: Mapping[str, str]) -> Profile:
    """An IamInstanceProfileSpecification (Name or Arn) to the profile it names, read from the IAM tables."""
    arn, name = spec.get("Arn"), spec.get("Name")
    if arn:
        # AWS: "Value (ARN) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN".
        error = AwsError(
            "InvalidParameterValue",
            f"Value ({arn}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN",
            status=400,
        )
        found = _profile_named(ctx, arn.rpartition("/")[2]) if ":instance-profile/" in arn else None
        if found is None or found.arn != arn:
            raise error
        return found
    if name:
        found = _profile_named(ctx, name)
        if found is None:
            # AWS: "Value (NAME) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile
            # name" (terraform-provider-aws#2012, aws-sdk-js-v3#5253).
            message = (
                f"Value ({name}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
            )
            raise AwsError("InvalidParameterValue", message, status=400)
        return found
    raise AwsError("MissingParameter", "The request must contain the parameter iamInstanceProfile.name", status=400)


def check_pass_role(ctx: Ctx, role_arn: str) -> None:
    """Giving an instance a profile passes its role to EC2: the caller needs iam:PassRole on the role, with
    iam:PassedToService ec2.amazonaws.com (IAM User Guide, "Using instance profiles" and "PassRole")."""
    ctx.authorize("iam:PassRole", role_arn, {"iam:PassedToService": ["ec2.amazonaws.com"]})


def _profile_named(ctx: Ctx, name: str) -> Profile | None:
    """The profile as EC2 sees IAM: a profile made less than the propagation delay ago is not there yet, and one
    deleted that recently still is (store/journal.py)."""
    view = journal.View(ctx.tx, ctx.now)
    row = view.one(schema.instance_profiles, account_id=ctx.account_id, name_key=name.lower())
    if row is None:
        return None
    link = view.one(schema.profile_roles, profile_id=row.id)
    role = view.one(schema.roles, id=link.role_id) if link is not None else None
    if role is not None:
        check_pass_role(ctx, ids.iam_arn(row.account_id, "role", role.path, role.name))
    return Profile(ids.iam_arn(row.account_id, "instance-profile", row.path, row.name), row.id)


def existing_association(instance_id: str) -> AwsError:
    # AWS: "There is an existing association for instance i-…" (aws-samples/aws-cloud9-bootstrapping-example#5).
    return AwsError("IncorrectState", f"There is an existing association for instance {instance_id}", status=400)


def start_association(ctx: Ctx, instance_id: str, profile: Profile) -> dict[str, Any]:
    """A new association in state associating; the unique active_instance_id makes a second active one fail."""
    values = {
        "id": ids.hex_id("iip-assoc-"),
        "account_id": ctx.account_id,
        "instance_id": instance_id,
        "active_instance_id": instance_id,
        "profile_arn": profile.arn,
        "profile_id": profile.id,
        "state": "associating",
        "state_since": ctx.now,
        "create_time": ctx.now,
    }
    ctx.tx.insert_unique(associations.insert().values(**values), None, existing_association(instance_id))
    return values


def end_associations(ctx: Ctx, instance_ids: Sequence[str]) -> None:
    """Terminating an instance ends its association: disassociating now, disassociated once the delay passes."""
    ctx.tx.execute(
        update(associations)
        .where(associations.c.active_instance_id.in_(list(instance_ids)))
        .values(state="disassociating", state_since=ctx.now, active_instance_id=None)
    )


def association_out(
    association_id: str, instance_id: str, arn: str, profile_id: str, state: str, timestamp: datetime | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AssociationId": association_id,
        "InstanceId": instance_id,
        "IamInstanceProfile": {"Arn": arn, "Id": profile_id},
        "State": state,
    }
    if timestamp is not None:
        out["Timestamp"] = timestamp
    return out
