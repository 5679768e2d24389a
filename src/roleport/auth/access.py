"""Authorization of one call: the principal's policies evaluated for an action on a resource, with the request's
condition keys, and AWS's access-denied answer when they do not allow it."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from roleport.auth import identity
from roleport.auth.policy import ALLOWED, Decision, Request, authorize, evaluate
from roleport.auth.principal import Principal
from roleport.auth.resources import Resource
from roleport.errors import AwsError
from roleport.store import schema
from roleport.store.db import Tx


class Access:
    """Checks calls for one request's principal; the principal's policies are loaded once, on the first check."""

    def __init__(self, tx: Tx, principal: Principal, service: str, now: datetime, source_ip: str, region: str) -> None:
        self.tx = tx
        self.principal = principal
        self.service = service
        self.now = now
        self.source_ip = source_ip
        self.region = region
        self._sets: identity.PolicySets | None = None
        self._context: dict[str, list[str]] | None = None
        self._seen: identity.Version | None = None

    def check(self, action: str, resource: Resource, extra: dict[str, list[str]] | None = None) -> None:
        if self.principal.kind == "root":
            return  # the root user is not subject to identity policies in its own account
        sets = self._policy_sets()
        sets_key = identity.sets_key(self.principal, self.seen())
        mentioned = self.tx.remember(("mentioned", sets_key), lambda: identity.mentioned_keys(sets))
        # The decision depends on the policies, the action, the resource and only those context keys the policies
        # mention, so it is kept under exactly those: repeated calls skip the evaluation, never a changed input.
        context: dict[str, list[str]] = {}
        if mentioned:
            context.update(self.base_context())
            context.update({f"aws:ResourceTag/{k}": [v] for k, v in resource.tags.items()})
            context.update(extra or {})
        lowered = {key.lower(): tuple(values) for key, values in context.items()}
        inputs = tuple((key, lowered.get(key, ())) for key in mentioned)
        request = Request(action, resource.arn, context)
        key = ("decision", sets_key, action, resource.arn, inputs)
        decision = self.tx.remember(
            key, lambda: authorize(sets.identity, request, session=sets.session, boundary=sets.boundary)
        )
        if decision.decision != ALLOWED:
            raise self._denied(request, decision, sets)

    def __call__(self, action: str, resource: str, extra: dict[str, list[str]] | None = None) -> None:
        self.check(action, Resource(resource), extra)

    def explicitly_denied(self, action: str, resource: str, extra: dict[str, list[str]] | None = None) -> bool:
        """Whether an explicit Deny in any of the principal's policies matches: a resource-based grant (a role trust
        policy naming the caller) still cannot override one (policy evaluation logic)."""
        if self.principal.kind == "root":
            return False
        sets = self._policy_sets()
        context = {**self.base_context(), **(extra or {})}
        decision = authorize(
            sets.identity, Request(action, resource, context), session=sets.session, boundary=sets.boundary
        )
        return decision.decision == "explicitDeny"

    def _policy_sets(self) -> identity.PolicySets:
        if self._sets is None:
            self._sets = identity.policy_sets(self.tx, self.principal, self.seen(), self.now)
        return self._sets

    def seen(self) -> identity.Version:
        """The state of IAM authorization sees: IAM's changes reach it after the propagation delay."""
        if self._seen is None:
            self._seen = identity.version(self.tx, self.now)
        return self._seen

    def generation(self) -> int:
        return self.seen().generation

    def base_context(self) -> dict[str, list[str]]:
        """The global condition keys AWS puts in every request context (Global condition context keys page)."""
        if self._context is not None:
            return self._context
        p = self.principal
        context: dict[str, list[str]] = {
            "aws:userid": [p.user_id],
            "aws:PrincipalArn": [p.entity_arn or p.arn],
            "aws:PrincipalAccount": [p.account_id],
            "aws:PrincipalType": ["User" if p.kind == "user" else "AssumedRole"],
            "aws:SourceIp": [self.source_ip],
            "aws:CurrentTime": [_iso(self.now)],
            "aws:EpochTime": [str(int(self.now.timestamp()))],
            "aws:SecureTransport": ["false"],
            "aws:RequestedRegion": [self.region],
            "aws:ViaAWSService": ["false"],
        }
        if p.kind == "user":
            context["aws:username"] = [p.name]
        if p.token_issued is not None:
            context["aws:TokenIssueTime"] = [_iso(p.token_issued)]
            context["aws:MultiFactorAuthPresent"] = ["false"]
        if p.source_instance is not None:
            context["ec2:SourceInstanceARN"] = [
                f"arn:aws:ec2:{self.region}:{p.account_id}:instance/{p.source_instance}"
            ]
        seen = self.seen()
        key = ("principal-tags", p.kind, p.entity_id, seen)
        table = schema.user_tags if p.kind == "user" else schema.role_tags
        tags = self.tx.remember(
            key, lambda: [(r.key, r.value) for r in seen.view(self.tx, self.now).rows(table, owner_id=p.entity_id)]
        )
        for tag_key, value in tags:
            context[f"aws:PrincipalTag/{tag_key}"] = [value]
        self._context = context
        return context

    def _denied(self, request: Request, decision: Decision, sets: identity.PolicySets) -> AwsError:
        reason = _reason(request, decision, sets)
        message = (
            f"User: {self.principal.arn} is not authorized to perform: {request.action} on resource: "
            f"{request.resource} {reason}"
        )
        if self.service != "ec2":
            return AwsError("AccessDenied", message, status=403)
        # EC2 appends an encoded authorization failure message (decoded by sts:DecodeAuthorizationMessage on AWS).
        detail = {
            "allowed": False,
            "explicitDeny": decision.decision == "explicitDeny",
            "context": {
                "principal": {"arn": self.principal.arn},
                "action": request.action,
                "resource": request.resource,
            },
        }
        encoded = base64.urlsafe_b64encode(json.dumps(detail).encode()).decode()
        return AwsError(
            "UnauthorizedOperation",
            f"You are not authorized to perform this operation. {message}. Encoded authorization failure message: "
            f"{encoded}",
            status=403,
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _reason(request: Request, decision: Decision, sets: identity.PolicySets) -> str:
    """AWS names the kind of policy that denied (IAM troubleshooting: access denied error messages)."""
    if decision.decision == "explicitDeny":
        sources = {match.source_id for match in decision.matched}
        session_ids = {p.source_id for p in sets.session or ()}
        boundary_ids = {p.source_id for p in sets.boundary or ()}
        if sources & {p.source_id for p in sets.identity}:
            return "with an explicit deny in an identity-based policy"
        if sources & session_ids:
            return "with an explicit deny in a session policy"
        if sources & boundary_ids:
            return "with an explicit deny in a permissions boundary"
        return "with an explicit deny in an identity-based policy"
    if evaluate(sets.identity, request).decision != ALLOWED:
        return f"because no identity-based policy allows the {request.action} action"
    if sets.session is not None and evaluate(sets.session, request).decision != ALLOWED:
        return f"because no session policy allows the {request.action} action"
    return f"because no permissions boundary allows the {request.action} action"
