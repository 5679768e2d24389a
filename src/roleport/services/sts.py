"""STS: who is calling, and role sessions by AssumeRole."""

from __future__ import annotations

import json
from typing import Any

from roleport.auth import policy_document, sessions
from roleport.auth.access import Access
from roleport.auth.resources import ANY, arn_given
from roleport.auth.trust import ACCOUNT, Caller, evaluate_trust
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services.iam_policies import default_document, find_policy
from roleport.services.registry import operation
from roleport.store import journal, schema

# Role chaining (a role session assuming a role) is capped at one hour (AssumeRole reference, DurationSeconds).
CHAINED_SESSION_LIMIT = 3600
# Session policies, inline and managed together, pack into at most 2,048 characters (AssumeRole reference, Policy).
PACKED_POLICY_LIMIT = 2048


# Needs no permission and cannot be denied (STS API reference).
@operation("sts", "GetCallerIdentity", resource=ANY, authorize=False)
def get_caller_identity(ctx: Ctx, p: Params) -> dict[str, Any]:
    # GetCallerIdentity needs no permission and cannot be denied (STS API reference).
    principal = ctx.principal
    return {"UserId": principal.user_id, "Account": principal.account_id, "Arn": principal.arn}


def _denied(ctx: Ctx, role_arn: str) -> AwsError:
    return AwsError(
        "AccessDenied",
        f"User: {ctx.principal.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
        status=403,
    )


# Weighs the role's trust policy with the caller's identity policies, so the handler authorizes itself.
@operation("sts", "AssumeRole", resource=arn_given("RoleArn", "role"), authorize=False)
def assume_role(ctx: Ctx, p: Params) -> dict[str, Any]:
    role_arn, principal = p["RoleArn"], ctx.principal
    if principal.kind == "root":
        raise AwsError("AccessDenied", "Roles may not be assumed by root accounts.", status=403)
    role = _role_from_arn(ctx, role_arn)
    extra = {"sts:RoleSessionName": [p["RoleSessionName"]]}
    if "ExternalId" in p:
        extra["sts:ExternalId"] = [p["ExternalId"]]
    access = ctx.authorize if isinstance(ctx.authorize, Access) else None
    context = {**(access.base_context() if access else {}), **extra}
    arns = (principal.arn,) if principal.kind == "user" else (principal.entity_arn, principal.arn)
    verdict = evaluate_trust(role.trust_policy, Caller(principal.account_id, arns), "sts:AssumeRole", context)
    if not verdict.allowed:
        raise _denied(ctx, role_arn)
    if verdict.via == ACCOUNT:
        ctx.authorize("sts:AssumeRole", role_arn, extra)  # the account delegates: identity policies must allow too
    elif access is not None and access.explicitly_denied("sts:AssumeRole", role_arn, extra):
        raise _denied(ctx, role_arn)
    duration = _duration(p.get("DurationSeconds", 3600), role.max_session_duration, principal.kind == "assumed-role")
    session_policies = _session_policies(ctx, p)
    session = sessions.mint(
        ctx.tx,
        account_id=ctx.account_id,
        role=role,
        session_name=p["RoleSessionName"],
        source="sts",
        now=ctx.now,
        duration_seconds=duration,
        session_policy=json.dumps(session_policies) if session_policies else None,
    )
    result: dict[str, Any] = {
        "Credentials": sessions.credentials_out(session),
        "AssumedRoleUser": {
            "AssumedRoleId": f"{role.id}:{p['RoleSessionName']}",
            "Arn": sessions.assumed_role_arn(ctx.account_id, role.name, p["RoleSessionName"]),
        },
    }
    if session_policies:
        packed = sum(len(json.dumps(json.loads(text), separators=(",", ":"))) for text in session_policies)
        result["PackedPolicySize"] = max(1, packed * 100 // PACKED_POLICY_LIMIT)
    if "SourceIdentity" in p:
        result["SourceIdentity"] = p["SourceIdentity"]
    return result


def _role_from_arn(ctx: Ctx, role_arn: str) -> Any:
    """The role an ARN names in this account; a role that does not exist is refused as access denied, as STS does
    (it does not reveal which roles exist)."""
    prefix = f"arn:aws:iam::{ctx.account_id}:role/"
    if not role_arn.startswith(prefix):
        raise _denied(ctx, role_arn)
    name = role_arn.rsplit("/", 1)[-1]
    # STS sees IAM as other services do: a role made less than the propagation delay ago cannot be assumed yet.
    role = journal.View(ctx.tx, ctx.now).one(schema.roles, account_id=ctx.account_id, name_key=name.lower())
    if role is None:
        raise _denied(ctx, role_arn)
    if f"{prefix}{role.path.lstrip('/')}{role.name}" != role_arn:
        raise _denied(ctx, role_arn)
    return role


def _duration(requested: int, role_limit: int, chained: bool) -> int:
    if chained and requested > CHAINED_SESSION_LIMIT:
        raise AwsError(
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            status=400,
        )
    if requested > role_limit:
        raise AwsError(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            status=400,
        )
    return requested


def _session_policies(ctx: Ctx, p: Params) -> list[str]:
    """The session's policy texts: the inline Policy and the documents of PolicyArns, checked like any policy."""
    texts: list[str] = []
    if "Policy" in p:
        policy_document.parse(p["Policy"])
        texts.append(p["Policy"])
    for entry in p.get("PolicyArns", []):
        texts.append(default_document(ctx, find_policy(ctx, entry["arn"])))
    packed = sum(len(json.dumps(json.loads(text), separators=(",", ":"))) for text in texts)
    if packed > PACKED_POLICY_LIMIT:
        raise AwsError(
            "PackedPolicyTooLarge",
            f"Packed size of session policies exceeds the limit of {PACKED_POLICY_LIMIT} characters.",
            status=400,
        )
    return texts
