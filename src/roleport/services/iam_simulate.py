"""SimulatePrincipalPolicy and SimulateCustomPolicy, answered by the same evaluator that authorizes real calls."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, select

from roleport import ids
from roleport.auth import identity, policy_document
from roleport.auth.policy import ALLOWED, Decision, Policy, Request, authorize, evaluate
from roleport.auth.principal import Principal
from roleport.auth.resources import ANY, arn_given
from roleport.context import Ctx, Params
from roleport.errors import AwsError
from roleport.services import iam_lookups
from roleport.services.registry import operation
from roleport.store import paging, schema

policies, versions = schema.policies, schema.policy_versions


_DECODER = json.JSONDecoder()
_MARKER_KIND = "simulate"


def _skip(text: str, index: int, chars: str = " \t\r\n") -> int:
    while index < len(text) and text[index] in chars:
        index += 1
    return index


def _positions(text: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Start and end (line, column) of each statement object in a policy's text, as IAM's simulator reports them:
    walk the top-level keys with the JSON decoder and measure the Statement value's objects."""
    spans: list[tuple[int, int]] = []
    try:
        index = _skip(text, _skip(text, 0) + 1)  # past the opening brace
        while index < len(text) and text[index] != "}":
            key, index = _DECODER.raw_decode(text, index)
            index = _skip(text, _skip(text, index) + 1)  # past the colon
            value_start = index
            _, index = _DECODER.raw_decode(text, index)
            if key == "Statement":
                spans = _objects(text, value_start)
            index = _skip(text, index, " \t\r\n,")
    except (ValueError, IndexError):
        return []
    return [(_line_column(text, a), _line_column(text, b)) for a, b in spans]


def _objects(text: str, index: int) -> list[tuple[int, int]]:
    if text[index] == "{":
        return [(index, _DECODER.raw_decode(text, index)[1])]
    spans = []
    index = _skip(text, index + 1)
    while text[index] != "]":
        _, end = _DECODER.raw_decode(text, index)
        spans.append((index, end))
        index = _skip(text, end, " \t\r\n,")
    return spans


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _match_out(match: Any, texts: dict[str, tuple[str, str]]) -> dict[str, Any]:
    kind, text = texts.get(match.source_id, ("none", ""))
    out: dict[str, Any] = {"SourcePolicyId": match.source_id, "SourcePolicyType": kind}
    spans = _positions(text)
    if match.statement_index < len(spans):
        (start_line, start_col), (end_line, end_col) = spans[match.statement_index]
        out["StartPosition"] = {"Line": start_line, "Column": start_col}
        out["EndPosition"] = {"Line": end_line, "Column": end_col}
    return out


def _context(p: Params) -> dict[str, list[str]]:
    return {entry["ContextKeyName"]: list(entry.get("ContextKeyValues", [])) for entry in p.get("ContextEntries", [])}


def _parsed(text: str) -> policy_document.PolicyDocument:
    try:
        return identity.document(text)
    except AwsError as error:
        raise AwsError("InvalidInput", error.message, status=400) from None


def _window(p: Params, total: int) -> tuple[int, int]:
    """The results [start, end) of this page. The marker carries the index to resume at, in the project's marker
    form: the results are a fixed sequence (each action with each resource), so an index names the same one on
    every page."""
    start = 0
    if p.get("Marker"):
        kind, index = paging.decode_marker(p["Marker"], 2)
        if kind != _MARKER_KIND or not index.isdigit() or not 0 < int(index) < total:
            raise AwsError("InvalidInput", "Invalid Marker.")
        start = int(index)
    return start, min(total, start + int(p.get("MaxItems", iam_lookups.DEFAULT_MAX_ITEMS)))


def _results(p: Params, sets: identity.PolicySets, texts: dict[str, tuple[str, str]]) -> dict[str, Any]:
    context = _context(p)
    actions, resources = p["ActionNames"], p.get("ResourceArns") or ["*"]
    total = len(actions) * len(resources)
    start, end = _window(p, total)
    results = []
    # Only this page's results are evaluated: a call naming 100,000 actions costs one page, not all of them.
    for index in range(start, end):
        action, resource = actions[index // len(resources)], resources[index % len(resources)]
        request = Request(action, resource, context)
        decision: Decision = authorize(sets.identity, request, boundary=sets.boundary)
        result: dict[str, Any] = {
            "EvalActionName": action,
            "EvalResourceName": resource,
            "EvalDecision": decision.decision,
            "MatchedStatements": [_match_out(m, texts) for m in decision.matched],
            "MissingContextValues": [],
        }
        if sets.boundary is not None:
            allowed = evaluate(sets.boundary, request).decision == ALLOWED
            result["PermissionsBoundaryDecisionDetail"] = {"AllowedByPermissionsBoundary": allowed}
        results.append(result)
    if end < total:
        return {"EvaluationResults": results, "IsTruncated": True, "Marker": paging.encode_marker([_MARKER_KIND, end])}
    return {"EvaluationResults": results, "IsTruncated": False}


def _inputs(p: Params, key: str, prefix: str) -> tuple[list[Policy], dict[str, tuple[str, str]]]:
    found, texts = [], {}
    for index, text in enumerate(p.get(key, []), start=1):
        source = f"{prefix}.{index}"
        found.append(Policy(source, _parsed(text)))
        texts[source] = ("none", text)
    return found, texts


# The simulations weigh conditions against the current time, so an answer is never kept.
@operation("iam", "SimulateCustomPolicy", resource=ANY, cacheable=False)
def simulate_custom_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    given, texts = _inputs(p, "PolicyInputList", "PolicyInputList")
    bounds, bound_texts = _inputs(p, "PermissionsBoundaryPolicyInputList", "PermissionsBoundaryPolicyInputList")
    sets = identity.PolicySets(tuple(given), None, tuple(bounds) if bounds else None)
    return _results(p, sets, texts | bound_texts)


@operation(
    "iam", "SimulatePrincipalPolicy", resource=arn_given("PolicySourceArn", "user", "role", "group"), cacheable=False
)
def simulate_principal_policy(ctx: Ctx, p: Params) -> dict[str, Any]:
    arn = p["PolicySourceArn"]
    kind, _, rest = arn.partition(f"arn:aws:iam::{ctx.account_id}:")[2].partition("/")
    if kind not in ("user", "role"):
        raise AwsError("InvalidInput", f"Invalid ARN: {arn}", status=400)
    table = schema.users if kind == "user" else schema.roles
    name = rest.rsplit("/", 1)[-1]
    row = ctx.tx.execute(
        select(table).where(table.c.account_id == ctx.account_id, table.c.name_key == name.lower())
    ).first()
    if row is None or ids.iam_arn(ctx.account_id, kind, row.path, row.name) != arn:
        raise AwsError("NoSuchEntity", f"The {kind} with name {name} cannot be found.", status=404)
    principal = Principal(
        kind="user" if kind == "user" else "assumed-role",
        arn=arn,
        user_id=row.id,
        account_id=ctx.account_id,
        name=row.name,
        entity_id=row.id,
        entity_arn=arn,
    )
    # IAM's own simulator reads IAM consistently, whatever the propagation delay.
    consistent = identity.Version(identity.version(ctx.tx, ctx.now).generation, None)
    sets = identity.policy_sets(ctx.tx, principal, consistent, ctx.now)
    texts = _principal_texts(ctx, kind, row)
    given, given_texts = _inputs(p, "PolicyInputList", "PolicyInputList")
    sets = identity.PolicySets(sets.identity + tuple(given), None, sets.boundary)
    return _results(p, sets, texts | given_texts)


def _principal_texts(ctx: Ctx, kind: str, row: Any) -> dict[str, tuple[str, str]]:
    """Each of the principal's policies by the source id the evaluator reports, with its type and text."""
    inline = schema.user_inline_policies if kind == "user" else schema.role_inline_policies
    link = schema.user_policy_attachments if kind == "user" else schema.role_policy_attachments
    owner = "user_id" if kind == "user" else "role_id"
    texts: dict[str, tuple[str, str]] = {}
    for found in ctx.tx.execute(select(inline.c.name, inline.c.document).where(inline.c[owner] == row.id)):
        texts[f"{row.name}/{found.name}"] = (kind, found.document)
    attached = (
        select(policies.c.arn, policies.c.account_id, versions.c.document)
        .join(link, link.c.policy_id == policies.c.id)
        .join(
            versions,
            and_(versions.c.policy_id == policies.c.id, versions.c.version_id == policies.c.default_version_id),
        )
        .where(link.c[owner] == row.id)
    )
    for found in ctx.tx.execute(attached):
        texts[found.arn] = ("aws-managed" if found.account_id == "aws" else "user-managed", found.document)
    return texts
