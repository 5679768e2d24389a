"""What the EC2 modules share: passing states that settle with time, id formats, filter matching, paging tokens,
and the instance profile lookups and association rows that launches and associations both make."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, case, cast, delete, false, literal, or_, update
from sqlalchemy.sql.elements import ColumnElement

from roleport import ids
from roleport.context import Ctx
from roleport.errors import AwsError
from roleport.store import journal, paging, schema
from roleport.store.db import Row

instances = schema.ec2_instances
associations = schema.ec2_associations

# DescribeInstances reference: "Recently terminated instances might appear in the returned results. This interval is
# usually less than one hour." roleport shows them for the full hour, then forgets them.
TERMINATED_VISIBLE = timedelta(hours=1)


# ---------------------------------------------------------------------------------------------- passing states


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Passing states and the stable state each settles into once `delay` has passed since it was entered.

    One rule, two readers: `at` for output in Python, `sql` for filters and paging in SQL, so that what a filter
    selects is exactly what the output shows."""

    settles: Mapping[str, str]

    def at(self, state: str, since: datetime, cutoff: datetime) -> str:
        """The state as seen at the instant whose settle cutoff (now - delay) is `cutoff`."""
        settled = self.settles.get(state)
        return settled if settled is not None and since <= cutoff else state

    def sql(self, state: Any, since: Any, cutoff: Any) -> ColumnElement[str]:
        whens = [(and_(state == passing, since <= cutoff), literal(stable)) for passing, stable in self.settles.items()]
        return case(*whens, else_=state)


INSTANCE = Lifecycle({"pending": "running", "stopping": "stopped", "shutting-down": "terminated"})
ASSOCIATION = Lifecycle({"associating": "associated", "disassociating": "disassociated"})
METADATA = Lifecycle({"pending": "applied"})  # InstanceMetadataOptionsResponse.State

# InstanceState.Code: the low byte (EC2 API reference, InstanceState).
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
STATE_NAMES = {str(code): name for name, code in STATE_CODES.items()}


def cutoff(ctx: Ctx) -> datetime:
    """Passing states entered at or before this instant have settled."""
    return ctx.now - timedelta(seconds=ctx.settings.state_transition_seconds)


def hidden_before(ctx: Ctx) -> datetime:
    """Instances that started shutting down at or before this instant have been terminated for an hour: gone."""
    return cutoff(ctx) - TERMINATED_VISIBLE


def instance_visible_sql(hidden: Any) -> ColumnElement[bool]:
    return or_(instances.c.state != "shutting-down", instances.c.state_since > hidden)


def purge_gone(ctx: Ctx) -> None:
    """Forget instances terminated, and associations disassociated, over an hour ago: no call can see them any more,
    and keeping them would make every scan over the live ones longer."""
    hidden = hidden_before(ctx)
    ctx.tx.execute(delete(instances).where(instances.c.state == "shutting-down", instances.c.state_since <= hidden))
    gone = and_(associations.c.state == "disassociating", associations.c.state_since <= hidden)
    ctx.tx.execute(delete(associations).where(gone))


def state_out(name: str) -> dict[str, Any]:
    return {"Code": STATE_CODES[name], "Name": name}


# ---------------------------------------------------------------------------------------------- ids

_INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_IMAGE_ID = re.compile(r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_ASSOCIATION_ID = re.compile(r"iip-assoc-(?:[0-9a-f]{8}|[0-9a-f]{17})")


def check_instance_ids(values: Iterable[str]) -> list[str]:
    """The ids in request order without repeats; a malformed one fails the call, as on AWS."""
    unique = list(dict.fromkeys(values))
    for value in unique:
        if not _INSTANCE_ID.fullmatch(value):
            # AWS: `Invalid id: "ma1"` (ClusterLabs/cluster-glue#29, StopInstances and DescribeInstances).
            raise AwsError("InvalidInstanceID.Malformed", f'Invalid id: "{value}"', status=400)
    return unique


def check_image_id(value: str) -> None:
    if not _IMAGE_ID.fullmatch(value):
        # AWS: `Invalid id: "{var.ami_id}" (expecting "ami-...")` (hashicorp/terraform#22172).
        raise AwsError("InvalidAMIID.Malformed", f'Invalid id: "{value}" (expecting "ami-...")', status=400)


def check_association_ids(values: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(values))
    for value in unique:
        if not _ASSOCIATION_ID.fullmatch(value):
            # AWS answered an instance id given as the association id this way (aws/aws-cli#2570).
            raise AwsError("InvalidParameterValue", "Invalid value for associationId.", status=400)
    return unique


def instances_not_found(missing: Sequence[str]) -> AwsError:
    # AWS: "The instance ID 'i-…' does not exist"; several: "The instance IDs 'i-a, i-b' do not exist"
    # (getmoto/moto#4903, quoting TerminateInstances).
    if len(missing) == 1:
        return AwsError("InvalidInstanceID.NotFound", f"The instance ID '{missing[0]}' does not exist", status=400)
    joined = ", ".join(missing)
    return AwsError("InvalidInstanceID.NotFound", f"The instance IDs '{joined}' do not exist", status=400)


def associations_not_found(missing: Sequence[str]) -> AwsError:
    # EC2's wording for association ids, as for Elastic IP associations ("The association ID 'eipassoc-…' does not
    # exist", hashicorp/terraform-provider-aws#3653).
    if len(missing) == 1:
        return AwsError(
            "InvalidAssociationID.NotFound", f"The association ID '{missing[0]}' does not exist", status=400
        )
    joined = ", ".join(missing)
    return AwsError("InvalidAssociationID.NotFound", f"The association IDs '{joined}' do not exist", status=400)


# ---------------------------------------------------------------------------------------------- filters


def parse_wildcards(value: str) -> tuple[bool, list[tuple[str, str]]]:
    """An EC2 filter value as parts: ("*", ""), ("?", "") and ("lit", text). `*` matches any run, `?` one
    character, and a backslash makes the next character literal (EC2 API reference, Filter / DescribeInstances)."""
    parts: list[tuple[str, str]] = []
    wild = False
    index = 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            parts.append(("lit", value[index + 1]))
            index += 2
            continue
        if char in "*?":
            wild = True
            parts.append((char, ""))
        else:
            parts.append(("lit", char))
        index += 1
    return wild, parts


def _like_pattern(parts: list[tuple[str, str]]) -> str:
    out = []
    for kind, text in parts:
        if kind == "*":
            out.append("%")
        elif kind == "?":
            out.append("_")
        else:
            out.append("\\" + text if text in "%_\\" else text)
    return "".join(out)


def _glob_pattern(parts: list[tuple[str, str]]) -> str:
    out = []
    for kind, text in parts:
        if kind in "*?":
            out.append(kind)
        else:
            out.append(f"[{text}]" if text in "*?[" else text)
    return "".join(out)


def matches(column: Any, values: Sequence[str], dialect: str) -> ColumnElement[bool]:
    """Any of the filter values matches the column, case-sensitively as EC2 filters do. Plain values compare with
    `IN`; wildcards use GLOB on SQLite (its LIKE ignores case) and LIKE on other stores."""
    exact: list[str] = []
    patterns: list[ColumnElement[bool]] = []
    for value in values:
        wild, parts = parse_wildcards(value)
        if not wild:
            exact.append("".join(text for _, text in parts))
        elif dialect == "sqlite":
            patterns.append(column.op("GLOB")(_glob_pattern(parts)))
        else:
            patterns.append(column.like(_like_pattern(parts), escape="\\"))
    clauses = ([column.in_(exact)] if exact else []) + patterns
    return or_(*clauses) if clauses else false()


def as_text(column: Any) -> Any:
    return cast(column, String)


def invalid_filter(name: str) -> AwsError:
    # AWS: "The filter 'public-ip' is invalid" (boto/boto3#1299, DescribeInstances).
    return AwsError("InvalidParameterValue", f"The filter '{name}' is invalid", status=400)


# ---------------------------------------------------------------------------------------------- paging

DEFAULT_PAGE = 1000


def encode_token(kind: str, seq: int) -> str:
    return paging.encode_marker([kind, seq])


def decode_token(kind: str, token: str) -> int:
    """The launch-order key a NextToken resumes after; a token this server did not make for this call is refused."""
    try:
        found_kind, seq = paging.decode_marker(token, 2)
        if found_kind != kind:
            raise ValueError(found_kind)
        return int(seq)
    except (AwsError, ValueError):
        # AWS: "Value (  ) for parameter NextToken is invalid. The token is invalid." (boto/boto3#2673).
        message = f"Value ( {token} ) for parameter NextToken is invalid. The token is invalid."
        raise AwsError("InvalidParameterValue", message, status=400) from None


def page_rows(ctx: Ctx, query: Any, seq: Any, token: str | None, kind: str, limit: int) -> tuple[list[Row], str | None]:
    """One page in launch order after the token: a range scan on (account, seq), so any page costs the same."""
    if token:
        query = query.where(seq > decode_token(kind, token))
    rows = list(ctx.tx.execute(query.order_by(seq).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_token(kind, rows[-1].seq)


# ---------------------------------------------------------------------------------------------- instance profiles


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
        # Giving an instance a profile passes its role to EC2: the caller needs iam:PassRole on the role, with
        # iam:PassedToService ec2.amazonaws.com (IAM User Guide, "Using instance profiles" and "PassRole").
        role_arn = ids.iam_arn(row.account_id, "role", role.path, role.name)
        ctx.authorize("iam:PassRole", role_arn, {"iam:PassedToService": ["ec2.amazonaws.com"]})
    return Profile(ids.iam_arn(row.account_id, "instance-profile", row.path, row.name), row.id)


# ---------------------------------------------------------------------------------------------- associations


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
