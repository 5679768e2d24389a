"""IAM pages: roles (list, detail, the create-role wizard, delete) and instance profiles (list, detail)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from roleport.console import iam_flows
from roleport.console.iam_flows import TrustChoice
from roleport.console.web import Visit
from roleport.errors import AwsError


def status_of(error: AwsError) -> int:
    """The HTTP status of a page that could not be shown because of this error."""
    if error.code == "NoSuchEntity":
        return 404
    if error.code in ("AccessDenied", "UnauthorizedOperation"):
        return 403
    return 400


def _role_path(name: str) -> str:
    return f"/iam/roles/{quote(name, safe='')}"


# ---------------------------------------------------------------------------------------------- roles


def roles(visit: Visit) -> Response:
    find = visit.value("find").strip()
    if find:
        return visit.redirect(_role_path(find))
    params: dict[str, Any] = {"MaxItems": visit.page_size()}
    if visit.value("marker"):
        params["Marker"] = visit.value("marker")
    with visit.act() as caller:
        listed = caller.attempt("iam", "ListRoles", params)
    rows = [
        {
            "name": role["RoleName"],
            "path": role["Path"],
            "entities": iam_flows.trusted_entities(role["AssumeRolePolicyDocument"]),
            "created": role["CreateDate"],
        }
        for role in listed.result.get("Roles", [])
    ]
    pager = visit.pager("/iam/roles", listed.result.get("Marker"))
    return visit.render("roles.html", roles=rows, error=listed.error, pager=pager)


def roles_action(visit: Visit) -> Response:
    """The roles list's buttons: "Delete" on the selected role opens its confirmation."""
    name = visit.value("role")
    if not name:
        return visit.redirect("/iam/roles", notice="choose-one")
    return visit.redirect(f"{_role_path(name)}/delete")


def role(visit: Visit) -> Response:
    name = visit.request.path_params["name"]
    with visit.act() as caller:
        got = caller.attempt("iam", "GetRole", {"RoleName": name})
        if got.error is not None:
            return visit.render("error.html", status=status_of(got.error), title=name, message=got.error.message)
        role = got.result["Role"]
        name = role["RoleName"]
        attached, attached_error = caller.attempt_pages(
            "iam", "ListAttachedRolePolicies", {"RoleName": name}, "AttachedPolicies"
        )
        inline_names, inline_error = caller.attempt_pages("iam", "ListRolePolicies", {"RoleName": name}, "PolicyNames")
        inline = []
        for policy_name in inline_names:
            found = caller.attempt("iam", "GetRolePolicy", {"RoleName": name, "PolicyName": policy_name})
            inline.append(
                {"name": policy_name, "document": found.result.get("PolicyDocument", ""), "error": found.error}
            )
        profiles, profiles_error = caller.attempt_pages(
            "iam", "ListInstanceProfilesForRole", {"RoleName": name}, "InstanceProfiles"
        )
    return visit.render(
        "role.html",
        role=role,
        entities=iam_flows.trusted_entities(role["AssumeRolePolicyDocument"]),
        attached=attached,
        attached_error=attached_error,
        inline=inline,
        inline_error=inline_error,
        profiles=profiles,
        profiles_error=profiles_error,
    )


def role_delete(visit: Visit) -> Response:
    """The console's delete confirmation: type the role's name; then the role and what the console removes with it."""
    name = visit.request.path_params["name"]
    error: AwsError | str | None = None
    if visit.request.method == "POST":
        if visit.value("confirm") != name:
            error = "To confirm deletion, enter the role name in the text input field."
        else:
            try:
                with visit.act(write=True) as caller:
                    iam_flows.delete_role(caller, name)
            except AwsError as failure:
                error = failure
            else:
                return visit.redirect("/iam/roles", notice="role-deleted", subject=name)
    with visit.act() as caller:
        got = caller.attempt("iam", "GetRole", {"RoleName": name})
        profiles, _ = caller.attempt_pages("iam", "ListInstanceProfilesForRole", {"RoleName": name}, "InstanceProfiles")
    if got.error is not None and error is None:
        return visit.render("error.html", status=status_of(got.error), title=name, message=got.error.message)
    status = 200 if error is None else (status_of(error) if isinstance(error, AwsError) else 400)
    message = error.message if isinstance(error, AwsError) else error
    return visit.render("role_delete.html", status=status, name=name, profiles=profiles, error=message)


# ---------------------------------------------------------------------------------------------- create role


def _choice(visit: Visit) -> TrustChoice:
    return TrustChoice(
        entity=visit.value("entity", "service"),
        service=visit.value("service", "ec2"),
        account=visit.value("account").strip(),
        custom=visit.value("custom") or iam_flows.CUSTOM_TEMPLATE,
    )


def create_trust(visit: Visit, problem: str | None = None) -> Response:
    """Step 1: select trusted entity."""
    with visit.act():
        pass  # only to check the session's key and name the principal in the header
    return visit.render(
        "role_create_trust.html",
        status=400 if problem else 200,
        choice=_choice(visit),
        use_cases=iam_flows.USE_CASES,
        error=problem,
    )


def create_permissions(visit: Visit) -> Response:
    """Step 2: add permissions, from the AWS managed policies (ListPolicies, Scope=AWS)."""
    choice = _choice(visit)
    problem = choice.problem()
    if problem:
        return create_trust(visit, problem)
    with visit.act() as caller:
        policies, error = caller.attempt_pages("iam", "ListPolicies", {"Scope": "AWS", "MaxItems": 1000}, "Policies")
    return visit.render(
        "role_create_permissions.html",
        choice=choice,
        policies=sorted(policies, key=lambda p: p["PolicyName"].lower()),
        chosen=set(visit.values("policy")),
        error=error.message if error else None,
    )


def create_review(visit: Visit) -> Response:
    """Step 3: name, review, and create; the POST creates the role (and for EC2 its instance profile)."""
    choice = _choice(visit)
    problem = choice.problem()
    if problem:
        return create_trust(visit, problem)
    policy_arns = visit.values("policy")
    tags = iam_flows.tags_from(visit.values("tag_key"), visit.values("tag_value"))
    name = visit.value("name").strip()
    description = visit.value("description", choice.default_description)
    error: str | None = None
    status = 200
    if visit.request.method == "POST":
        try:
            with visit.act(write=True) as caller:
                iam_flows.create_role(
                    caller, name=name, trust=choice, description=description, tags=tags, policy_arns=policy_arns
                )
        except AwsError as failure:
            error, status = failure.message, status_of(failure)
        else:
            notice = "role-created-profile" if choice.for_ec2 else "role-created"
            return visit.redirect(_role_path(name), notice=notice, subject=name)
    else:
        with visit.act():
            pass
    return visit.render(
        "role_create_review.html",
        status=status,
        choice=choice,
        trust_document=choice.document(visit.console.pipeline.settings.account_id),
        policy_arns=policy_arns,
        name=name,
        description=description,
        tags=tags,
        error=error,
    )


# ---------------------------------------------------------------------------------------------- instance profiles


def profiles(visit: Visit) -> Response:
    params: dict[str, Any] = {"MaxItems": visit.page_size()}
    if visit.value("marker"):
        params["Marker"] = visit.value("marker")
    with visit.act() as caller:
        listed = caller.attempt("iam", "ListInstanceProfiles", params)
    pager = visit.pager("/iam/instance-profiles", listed.result.get("Marker"))
    return visit.render(
        "profiles.html", profiles=listed.result.get("InstanceProfiles", []), error=listed.error, pager=pager
    )


def profile(visit: Visit) -> Response:
    name = visit.request.path_params["name"]
    with visit.act() as caller:
        got = caller.attempt("iam", "GetInstanceProfile", {"InstanceProfileName": name})
    if got.error is not None:
        return visit.render("error.html", status=status_of(got.error), title=name, message=got.error.message)
    return visit.render("profile.html", profile=got.result["InstanceProfile"])
