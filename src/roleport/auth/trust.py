"""Role trust policies: whether a principal (an AWS identity or a service) may assume a role.

A trust policy is a resource-based policy on the role. Within one account, a statement that names the caller
itself (its user or role ARN, or the assumed-role session ARN) is enough on its own; one that names the account
(`123456789012` or `arn:aws:iam::123456789012:root`) delegates to the account, so the caller's identity policies
must allow sts:AssumeRole too (IAM User Guide: policy evaluation logic, "resource-based policies"; and "How to use
trust policies with IAM roles").
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from roleport.auth import policy_document
from roleport.auth.policy import ALLOWED, EXPLICIT_DENY, Policy, Request, evaluate

DIRECT, ACCOUNT = "direct", "account"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: the ARNs that identify an AWS principal, or a service principal such as ec2.amazonaws.com."""

    account_id: str = ""
    arns: tuple[str, ...] = ()  # e.g. the user ARN; or the role ARN and the session ARN
    service: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    via: str = ""  # DIRECT or ACCOUNT when allowed
    explicit_deny: bool = False


def _values(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []


def _names(principal: Any, caller: Caller) -> str:
    """How a Principal element names the caller: DIRECT, ACCOUNT, or "" when it does not."""
    if principal == "*":
        return DIRECT if caller.arns else ""
    if not isinstance(principal, dict):
        return ""
    if caller.service:
        return DIRECT if caller.service in _values(principal.get("Service")) else ""
    found = ""
    for value in _values(principal.get("AWS")):
        if value == "*" or value in caller.arns:
            return DIRECT
        if value in (caller.account_id, f"arn:aws:iam::{caller.account_id}:root"):
            found = ACCOUNT
    return found


@functools.lru_cache(maxsize=1024)
def _statements(trust_text: str) -> tuple[dict[str, Any], ...]:
    return policy_document.parse(trust_text, trust=True).statements


def evaluate_trust(trust_text: str, caller: Caller, action: str, context: Mapping[str, Sequence[str]]) -> Verdict:
    """Evaluate the statements that name the caller, with their actions and conditions."""
    allow_via = ""
    for index, statement in enumerate(_statements(trust_text)):
        if "NotPrincipal" in statement:
            via = "" if _names(statement["NotPrincipal"], caller) else DIRECT
        else:
            via = _names(statement.get("Principal"), caller)
        if not via:
            continue
        body = {k: v for k, v in statement.items() if k not in ("Principal", "NotPrincipal")}
        body["Resource"] = "*"
        document = _document(json.dumps({"Version": "2012-10-17", "Statement": [body]}))
        decision = evaluate([Policy(f"trust-{index}", document)], Request(action, "*", context)).decision
        if decision == EXPLICIT_DENY:
            return Verdict(False, explicit_deny=True)
        if decision == ALLOWED:
            allow_via = DIRECT if DIRECT in (via, allow_via) else ACCOUNT
    return Verdict(bool(allow_via), allow_via)


@functools.lru_cache(maxsize=4096)
def _document(text: str) -> policy_document.PolicyDocument:
    return policy_document.parse(text)
