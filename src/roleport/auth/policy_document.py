"""IAM policy documents: parsed and checked against the policy grammar, with IAM's MalformedPolicyDocument texts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from roleport.errors import AwsError

VERSIONS = ("2008-10-17", "2012-10-17")
_STATEMENT_KEYS = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"}
)
_PRINCIPAL_KEYS = frozenset({"AWS", "Service", "Federated", "CanonicalUser"})
# A trust policy may name only the STS actions that start or decorate a role session (IAM error reference).
_TRUST_ACTIONS = frozenset(
    {
        "sts:assumerole",
        "sts:assumerolewithsaml",
        "sts:assumerolewithwebidentity",
        "sts:tagsession",
        "sts:setsourceidentity",
        "sts:setcontext",
        "sts:*",
        "*",
    }
)


# The grammar nests at most six levels (document, Statement list, statement, Condition, operator, value list), so
# anything much deeper is refused before the JSON decoder sees it: Python's decoder recurses once per level and
# fails with RecursionError (a 500) near a thousand, and every later walk of the document would recurse as deep.
MAX_DEPTH = 64
# Unrolled, with the closing quote optional, so a match never fails and backtracks: a string that is never closed
# costs one pass, not one per quote inside it (which made a 130 KB document take seconds on the event loop).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?')
_BRACKETS = re.compile(r"[\[\]{}]")


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    version: str
    statements: tuple[dict[str, Any], ...]


def _malformed(message: str) -> AwsError:
    return AwsError("MalformedPolicyDocument", message, status=400)


def loads(text: str) -> Any:
    """A policy's JSON, nested no deeper than MAX_DEPTH; MalformedPolicyDocument otherwise. Every reading of a policy
    text from a caller goes through here, so none can reach the decoder's recursion limit."""
    if _too_deep(text):
        raise _malformed("This policy contains invalid Json")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise _malformed("This policy contains invalid Json") from None


def _too_deep(text: str) -> bool:
    # Strings are blanked first, so brackets inside them don't count; an unbalanced text fails the decoder anyway.
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub("", text) if '"' in text else text):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def parse(text: str, *, trust: bool = False) -> PolicyDocument:
    """Parse a permissions policy, or with trust=True a role trust policy; raise MalformedPolicyDocument."""
    document = loads(text)
    if not isinstance(document, dict):
        raise _malformed("This policy contains invalid Json")
    unknown = set(document) - {"Version", "Id", "Statement"}
    if unknown:
        raise _malformed("Syntax errors in policy.")
    version = document.get("Version", "2008-10-17")
    if not isinstance(version, str) or version not in VERSIONS:
        # IAM's words for a Version other than the two it knows ("The policy must contain a valid version string",
        # bobbyhadz.com/blog/aws-policy-must-contain-valid-version-string; S3 says the same for bucket policies).
        raise _malformed("The policy must contain a valid version string")
    raw = document.get("Statement")
    if raw is None:
        raise _malformed("Syntax errors in policy.")
    statements = raw if isinstance(raw, list) else [raw]
    if not statements:
        raise _malformed("Syntax errors in policy.")
    for statement in statements:
        _check_statement(statement, trust)
    return PolicyDocument(version=str(version), statements=tuple(statements))


def _check_statement(statement: Any, trust: bool) -> None:
    if not isinstance(statement, dict) or set(statement) - _STATEMENT_KEYS:
        raise _malformed("Syntax errors in policy.")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise _malformed("Syntax errors in policy.")
    if ("Action" in statement) == ("NotAction" in statement):
        raise _malformed("Policy statement must contain actions.")
    actions = _strings(statement.get("Action", statement.get("NotAction")))
    for action in actions:
        _check_action(action)
    if "Condition" in statement and not isinstance(statement["Condition"], dict):
        raise _malformed("Syntax errors in policy.")
    if trust:
        _check_trust_statement(statement, actions)
        return
    if "Principal" in statement or "NotPrincipal" in statement:
        raise _malformed("Policy document should not specify a principal.")
    if ("Resource" in statement) == ("NotResource" in statement):
        raise _malformed("Policy statement must contain resources.")
    for resource in _strings(statement.get("Resource", statement.get("NotResource"))):
        if resource != "*" and not resource.startswith("arn:"):
            raise _malformed(f'Resource {resource} must be in ARN format or "*".')


def _check_trust_statement(statement: dict[str, Any], actions: list[str]) -> None:
    if "Resource" in statement or "NotResource" in statement:
        raise _malformed("Has prohibited field Resource")
    if "Principal" not in statement and "NotPrincipal" not in statement:
        raise _malformed("Missing required field Principal")
    principal = statement.get("Principal", statement.get("NotPrincipal"))
    if principal != "*":
        if not isinstance(principal, dict) or not principal or set(principal) - _PRINCIPAL_KEYS:
            raise _malformed("Invalid principal in policy")
        for kind, values in principal.items():
            for value in _strings(values):
                if not value:
                    raise _malformed(f'Invalid principal in policy: "{kind}":""')
    if "NotAction" in statement or any(action.lower() not in _TRUST_ACTIONS for action in actions):
        raise _malformed("AssumeRole policy may only specify STS AssumeRole actions.")


def _check_action(action: str) -> None:
    if action == "*":
        return
    if ":" not in action:
        raise _malformed("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.")
    if action.count(":") > 1:
        raise _malformed("Actions/Condition can contain only one colon.")
    vendor = action.split(":", 1)[0]
    if not vendor or not all(c.isalnum() or c == "-" for c in vendor):
        raise _malformed(f"Vendor {vendor} is not valid")


def _strings(value: Any) -> list[str]:
    """A policy element that may be one string or a list of strings."""
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        raise _malformed("Syntax errors in policy.")
    return values
