"""EC2 instance state changes: StartInstances, StopInstances, TerminateInstances, ModifyInstanceMetadataOptions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

from sqlalchemy import update

from roleport.auth.resources import instance_ids, one_instance
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import ec2_ids, ec2_lifecycle, ec2_profiles
from roleport.services.ec2_instance_views import find_instances, metadata_out
from roleport.services.ec2_instances import metadata_options
from roleport.services.ec2_lifecycle import INSTANCE_STATES, instances, state_out
from roleport.services.registry import operation

USER_SHUTDOWN = "Client.UserInitiatedShutdown"  # StateReason.Code after a user's stop or terminate

# From each state a call accepts: the passing state it moves the instance to, or None to leave it be (stopping a
# stopped instance, or terminating a terminated one, is not an error on AWS). Any other state is refused.
_STOP: Mapping[str, str | None] = {"running": "stopping", "stopping": None, "stopped": None}
_START: Mapping[str, str | None] = {"stopped": "pending", "pending": None, "running": None}
_TERMINATE: Mapping[str, str | None] = {
    "pending": "shutting-down",
    "running": "shutting-down",
    "stopping": "shutting-down",
    "stopped": "shutting-down",
    "shutting-down": None,
    "terminated": None,
}

Refusal = Callable[[str, str], AwsError]


def _cannot_stop(instance_id: str, state: str) -> AwsError:
    if state == "pending":
        # AWS: "Instance 'i-…' cannot be stopped as it has never reached the 'running' state."
        # (cloud-custodian/cloud-custodian#6014)
        message = f"Instance '{instance_id}' cannot be stopped as it has never reached the 'running' state."
    else:
        message = f"The instance '{instance_id}' is not in a state from which it can be stopped."
    return AwsError("IncorrectInstanceState", message, status=400)


def _cannot_start(instance_id: str, _state: str) -> AwsError:
    # AWS: "The instance 'i-…' is not in a state from which it can be started." (canonical/ubuntu-pro-client#1697)
    message = f"The instance '{instance_id}' is not in a state from which it can be started."
    return AwsError("IncorrectInstanceState", message, status=400)


def _cannot_terminate(instance_id: str, _state: str) -> AwsError:
    # Unreachable while every state may be terminated; kept so each call names its refusal.
    message = f"The instance '{instance_id}' is not in a state from which it can be terminated."
    return AwsError("IncorrectInstanceState", message, status=400)


def _change(
    ctx: Ctx, p: Params, moves: Mapping[str, str | None], refuse: Refusal, values: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Move every listed instance or none: all are checked before any changes (EC2 calls are all-or-nothing).
    Returns the state changes in request order and the ids that actually moved."""
    wanted = ec2_ids.check_instance_ids(p["InstanceIds"])
    found = find_instances(ctx, wanted, for_update=True)
    cutoff = ec2_lifecycle.cutoff(ctx)
    plan: list[tuple[str, str, str | None]] = []
    for instance_id in wanted:
        row = found[instance_id]
        current = INSTANCE_STATES.at(row.state, row.state_since, cutoff)
        if current not in moves:
            raise refuse(instance_id, current)
        plan.append((instance_id, current, moves[current]))
    moved = [instance_id for instance_id, _, target in plan if target is not None]
    for target in {target for _, _, target in plan if target is not None}:
        chosen = [instance_id for instance_id, _, goal in plan if goal == target]
        statement = update(instances).where(instances.c.id.in_(chosen))
        ctx.tx.execute(statement.values(state=target, state_since=ctx.now, **values))
    changes = [
        {"InstanceId": instance_id, "CurrentState": state_out(target or current), "PreviousState": state_out(current)}
        for instance_id, current, target in plan
    ]
    return changes, moved


@operation("ec2", "StopInstances", resource=instance_ids())
def stop_instances(ctx: Ctx, p: Params) -> dict[str, Any]:
    changes, _ = _change(ctx, p, _STOP, _cannot_stop, {"state_reason": USER_SHUTDOWN})
    return {"StoppingInstances": changes}


@operation("ec2", "StartInstances", resource=instance_ids())
def start_instances(ctx: Ctx, p: Params) -> dict[str, Any]:
    # A start is a new launch: LaunchTime moves to now, and the stop's reason no longer applies.
    changes, _ = _change(ctx, p, _START, _cannot_start, {"state_reason": None, "launch_time": ctx.now})
    return {"StartingInstances": changes}


@operation("ec2", "TerminateInstances", resource=instance_ids())
def terminate_instances(ctx: Ctx, p: Params) -> dict[str, Any]:
    changes, moved = _change(ctx, p, _TERMINATE, _cannot_terminate, {"state_reason": USER_SHUTDOWN})
    if moved:
        ec2_profiles.end_associations(ctx, moved)
    return {"TerminatingInstances": changes}


_METADATA_MEMBERS = {
    "HttpTokens": "http_tokens",
    "HttpEndpoint": "http_endpoint",
    "HttpPutResponseHopLimit": "http_put_response_hop_limit",
    "InstanceMetadataTags": "instance_metadata_tags",
    "HttpProtocolIpv6": "http_protocol_ipv6",
}


@operation("ec2", "ModifyInstanceMetadataOptions", resource=one_instance())
def modify_instance_metadata_options(ctx: Ctx, p: Params) -> dict[str, Any]:
    [instance_id] = ec2_ids.check_instance_ids([p["InstanceId"]])
    row = find_instances(ctx, [instance_id], for_update=True)[instance_id]
    current = INSTANCE_STATES.at(row.state, row.state_since, ec2_lifecycle.cutoff(ctx))
    if current in ("shutting-down", "terminated"):
        message = f"The instance '{instance_id}' is not in a valid state for this operation."
        raise AwsError("IncorrectInstanceState", message, status=400)
    stored = {member: getattr(row, column) for member, column in _METADATA_MEMBERS.items()}
    options = metadata_options({member: p[member] for member in _METADATA_MEMBERS if member in p}, stored)
    values = {column: options[member] for member, column in _METADATA_MEMBERS.items()}
    # Options change on a running instance through `pending` to `applied`; a stopped one applies them at its next
    # start (ModifyInstanceMetadataOptions reference). Either way the call itself answers `pending`.
    ctx.tx.execute(
        update(instances)
        .where(instances.c.id == instance_id)
        .values(**values, metadata_state="pending", metadata_since=ctx.now)
    )
    view = SimpleNamespace(**values, metadata_state="pending", metadata_since=ctx.now)
    return {"InstanceId": instance_id, "InstanceMetadataOptions": metadata_out(view, ctx.now, state="pending")}
