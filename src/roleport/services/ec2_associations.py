"""EC2 IAM instance profile associations: associate, describe, replace and disassociate, with their states."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, update

from roleport.auth.resources import ANY, instance_of_association, one_instance
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import ec2_filters, ec2_ids, ec2_lifecycle, ec2_profiles
from roleport.services.ec2_filters import matches
from roleport.services.ec2_instance_views import find_instances
from roleport.services.ec2_lifecycle import ASSOCIATION_STATES, INSTANCE_STATES, associations
from roleport.services.ec2_profiles import association_out
from roleport.services.registry import operation
from roleport.store import paging
from roleport.store.db import Prepared, Row

# Locks are always taken instance first, then association (as TerminateInstances does), so concurrent calls on one
# instance queue behind each other instead of deadlocking on PostgreSQL.

_TOKENS = paging.Ec2Tokens("associations")


def _not_in_state(instance_id: str, states: str) -> AwsError:
    # AWS: "The instance 'i-…' is not in the 'running' or 'stopped' states." (Enterprise-CMCS/eAPD#2304,
    # AssociateIamInstanceProfile on an instance that was neither).
    return AwsError("IncorrectInstanceState", f"The instance '{instance_id}' is not in the {states}.", status=400)


def _locked_instance(ctx: Ctx, instance_id: str, allowed: tuple[str, ...], states: str) -> Row:
    row = find_instances(ctx, [instance_id], for_update=True)[instance_id]
    if INSTANCE_STATES.at(row.state, row.state_since, ec2_lifecycle.cutoff(ctx)) not in allowed:
        raise _not_in_state(instance_id, states)
    return row


def _visible(ctx: Ctx) -> tuple[Any, Any]:
    """Associations not yet disassociated (EC2 stops listing them then), and their derived state as SQL."""
    effective = ASSOCIATION_STATES.sql(associations.c.state, associations.c.state_since, ec2_lifecycle.cutoff(ctx))
    query = select(associations).where(associations.c.account_id == ctx.account_id, effective != "disassociated")
    return query, effective


_ONE = Prepared(
    select(associations).where(
        associations.c.account_id == bindparam("account"),
        associations.c.id == bindparam("id"),
        ASSOCIATION_STATES.sql(associations.c.state, associations.c.state_since, bindparam("cutoff"))
        != "disassociated",
    )
)


def _find(ctx: Ctx, association_id: str) -> Row:
    [wanted] = ec2_ids.check_association_ids([association_id])
    values = {"account": ctx.account_id, "id": wanted, "cutoff": ec2_lifecycle.cutoff(ctx)}
    row = ctx.tx.execute(_ONE, values).first()
    if row is None:
        raise ec2_ids.associations_not_found([wanted])
    return row


def _find_locked(ctx: Ctx, association_id: str, allowed: tuple[str, ...], states: str) -> Row:
    """The association, with its instance locked (in the allowed states), read again under that lock.

    The first read only says which instance to lock. A concurrent Replace or Disassociate of the same association
    may commit while this call waits for the lock (PostgreSQL; SQLite runs writers one at a time), so the loser
    judges the association as it is after the winner, as on SQLite and as a call made after the winner would: once
    it has settled into disassociated it is gone (InvalidAssociationID.NotFound, as Describe answers for it); while
    it is still disassociating it is no longer the active association (IncorrectState, AWS's answer to a Replace of
    an association that is not the active one: aws/aws-cli#5251). Judging the first read instead answered
    IncorrectState on PostgreSQL where SQLite answered NotFound."""
    first = _find(ctx, association_id)
    _locked_instance(ctx, first.instance_id, allowed, states)
    return _find(ctx, association_id)


def _not_active(association_id: str) -> AwsError:
    return AwsError(
        "IncorrectState", f"The association '{association_id}' is not in a valid state for this operation.", status=400
    )


def _not_the_active(association_id: str) -> AwsError:
    # AWS's answer to ReplaceIamInstanceProfileAssociation on an association that is not the instance's active one
    # (aws/aws-cli#5251).
    return AwsError("IncorrectState", f"The association {association_id} is not the active association")


def _end(ctx: Ctx, row: Row, refused: AwsError) -> None:
    """associating/associated → disassociating. Conditional on still being active, so of two concurrent callers
    only one ends it; the other is refused (the association is no longer in a state to change)."""
    ended = ctx.tx.execute(
        update(associations)
        .where(associations.c.id == row.id, associations.c.active_instance_id.is_not(None))
        .values(state="disassociating", state_since=ctx.now, active_instance_id=None)
    )
    if ended.rowcount != 1:
        raise refused


def _out(row: Row, state: str) -> dict[str, Any]:
    return association_out(row.id, row.instance_id, row.profile_arn, row.profile_id, state, row.create_time)


@operation("ec2", "AssociateIamInstanceProfile", resource=one_instance())
def associate_iam_instance_profile(ctx: Ctx, p: Params) -> dict[str, Any]:
    [instance_id] = ec2_ids.check_instance_ids([p["InstanceId"]])
    # AssociateIamInstanceProfile reference: "with a running or stopped instance".
    instance = _locked_instance(ctx, instance_id, ("running", "stopped"), "'running' or 'stopped' states")
    profile = ec2_profiles.resolve_profile(ctx, p["IamInstanceProfile"])
    if instance.association_id is not None:
        raise ec2_profiles.existing_association(instance_id)
    made = ec2_profiles.start_association(ctx, instance_id, profile)
    out = association_out(made["id"], instance_id, profile.arn, profile.id, "associating", ctx.now)
    return {"IamInstanceProfileAssociation": out}


@operation("ec2", "ReplaceIamInstanceProfileAssociation", resource=instance_of_association())
def replace_iam_instance_profile_association(ctx: Ctx, p: Params) -> dict[str, Any]:
    # ReplaceIamInstanceProfileAssociation reference: "for the specified running instance".
    old = _find_locked(ctx, p["AssociationId"], ("running",), "'running' state")
    profile = ec2_profiles.resolve_profile(ctx, p["IamInstanceProfile"])
    # AWS: replace rather than disassociate + associate, so the instance is never without credentials; the new
    # association gets a new id (ReplaceIamInstanceProfileAssociation sample response).
    _end(ctx, old, _not_the_active(old.id))
    made = ec2_profiles.start_association(ctx, old.instance_id, profile)
    out = association_out(made["id"], old.instance_id, profile.arn, profile.id, "associating", ctx.now)
    return {"IamInstanceProfileAssociation": out}


@operation("ec2", "DisassociateIamInstanceProfile", resource=instance_of_association())
def disassociate_iam_instance_profile(ctx: Ctx, p: Params) -> dict[str, Any]:
    # DisassociateIamInstanceProfile reference: "from a running or stopped instance".
    old = _find_locked(ctx, p["AssociationId"], ("running", "stopped"), "'running' or 'stopped' states")
    _end(ctx, old, _not_active(old.id))
    # The reference's sample response carries no timestamp.
    out = association_out(old.id, old.instance_id, old.profile_arn, old.profile_id, "disassociating", None)
    return {"IamInstanceProfileAssociation": out}


def _filtered(ctx: Ctx, query: Any, effective: Any, p: Params) -> Any:
    for item in p.get("Filters", []):
        name, values = item.get("Name", ""), list(item.get("Values", []))
        if name == "instance-id":
            query = query.where(matches(associations.c.instance_id, values))
        elif name == "state":
            query = query.where(matches(effective, values))
        else:
            raise ec2_filters.invalid_filter(name)
    return query


def _page_size(p: Params) -> int:
    # The model says 5-1000, but AWS accepted 4 and 1001 here (see protocol/ec2_constraints.py), so out-of-range sizes
    # are clamped rather than refused.
    size = p.get("MaxResults")
    return paging.EC2_DEFAULT_PAGE if size is None else min(max(int(size), 1), paging.EC2_DEFAULT_PAGE)


def _check_combination(wanted: list[str], p: Params) -> None:
    # EC2 refuses an id list together with paging on its describe calls (DescribeInstances reference: "You cannot
    # specify this parameter and the instance IDs parameter in the same request").
    for member, wire in (("MaxResults", "maxResults"), ("NextToken", "nextToken")):
        if wanted and p.get(member) is not None:
            message = f"The parameter associationIds cannot be used with the parameter {wire}"
            raise AwsError("InvalidParameterCombination", message, status=400)


@operation("ec2", "DescribeIamInstanceProfileAssociations", resource=ANY)
def describe_iam_instance_profile_associations(ctx: Ctx, p: Params) -> dict[str, Any]:
    wanted = ec2_ids.check_association_ids(p.get("AssociationIds", []))
    _check_combination(wanted, p)
    query, effective = _visible(ctx)
    if wanted:
        query = query.where(associations.c.id.in_(wanted))
        found = set(ctx.tx.execute(query.with_only_columns(associations.c.id)).scalars())
        missing = [value for value in wanted if value not in found]
        if missing:
            raise ec2_ids.associations_not_found(missing)
    query = _filtered(ctx, query.add_columns(effective.label("effective_state")), effective, p)
    size = max(_page_size(p), len(wanted))
    rows, token = paging.page(ctx.tx, query, [associations.c.seq], p.get("NextToken"), size, _TOKENS)
    result: dict[str, Any] = {"IamInstanceProfileAssociations": [_out(row, row.effective_state) for row in rows]}
    if token:
        result["NextToken"] = token
    return result
