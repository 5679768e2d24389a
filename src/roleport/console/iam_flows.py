"""What the AWS console does around roles beyond single API calls: the trust policies its create-role wizard writes,
the instance profile it makes for an EC2 role, the clean-up before it deletes a role, and how it names trusted
entities. Every step is an ordinary API call made as the signed-in principal (actions.Caller)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from roleport.auth import policy_document
from roleport.console.actions import Caller
from roleport.errors import AwsError

# The console's "AWS service" use cases offered here: key → (label, service principal, default description). The
# descriptions are the ones the console fills in (IAM console, "Create role" → "AWS service").
USE_CASES: dict[str, tuple[str, str, str]] = {
    "ec2": ("EC2", "ec2.amazonaws.com", "Allows EC2 instances to call AWS services on your behalf."),
    "lambda": ("Lambda", "lambda.amazonaws.com", "Allows Lambda functions to call AWS services on your behalf."),
    "ecs-tasks": (
        "Elastic Container Service Task",
        "ecs-tasks.amazonaws.com",
        "Allows ECS tasks to call AWS services on your behalf.",
    ),
}
ENTITY_TYPES = ("service", "account", "custom")
_ACCOUNT = re.compile(r"\d{12}")
CUSTOM_TEMPLATE = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Statement1", "Effect": "Allow", "Principal": {}, "Action": "sts:AssumeRole"}],
    },
    indent=4,
)


def _trust(principal: dict[str, Any]) -> str:
    # The shape the console writes: Action and the service principal as one-element lists.
    statement = {"Effect": "Allow", "Principal": principal, "Action": ["sts:AssumeRole"]}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, indent=4)


@dataclass(frozen=True, slots=True)
class TrustChoice:
    """Step 1 of the create-role wizard, carried through the later steps in the query string."""

    entity: str = "service"
    service: str = "ec2"
    account: str = ""  # another account's id; empty means this account
    custom: str = ""

    def problem(self) -> str | None:
        if self.entity not in ENTITY_TYPES:
            return "Choose a trusted entity type."
        if self.entity == "service" and self.service not in USE_CASES:
            return "Choose a service or use case."
        if self.entity == "account" and self.account and not _ACCOUNT.fullmatch(self.account):
            return "An account ID is 12 digits."
        if self.entity == "custom":
            try:
                policy_document.loads(self.custom)  # bounded: a deeply nested text is refused, not recursed into
            except AwsError:
                return "The trust policy is not valid JSON."
        return None

    def document(self, account_id: str) -> str:
        if self.entity == "service":
            return _trust({"Service": [USE_CASES[self.service][1]]})
        if self.entity == "account":
            return _trust({"AWS": f"arn:aws:iam::{self.account or account_id}:root"})
        return self.custom

    @property
    def for_ec2(self) -> bool:
        """Whether the console makes an instance profile: only for the EC2 use case (IAM User Guide, "Use instance
        profiles": the console creates one, with the role's name, when you create a role for EC2)."""
        return self.entity == "service" and self.service == "ec2"

    @property
    def default_description(self) -> str:
        return USE_CASES[self.service][2] if self.entity == "service" and self.service in USE_CASES else ""

    def fields(self) -> list[tuple[str, str]]:
        """The choice as form fields, for links and hidden inputs of the next steps."""
        found = [("entity", self.entity)]
        if self.entity == "service":
            found.append(("service", self.service))
        elif self.entity == "account":
            found.append(("account", self.account))
        else:
            found.append(("custom", self.custom))
        return found


def tags_from(keys: list[str], values: list[str]) -> list[dict[str, str]]:
    """Tag rows of a form; rows without a key are the empty ones the form offers, and are left out."""
    padded = values + [""] * (len(keys) - len(values))
    return [{"Key": k.strip(), "Value": v} for k, v in zip(keys, padded, strict=False) if k.strip()]


def create_role(
    caller: Caller,
    *,
    name: str,
    trust: TrustChoice,
    description: str,
    tags: list[dict[str, str]],
    policy_arns: list[str],
) -> None:
    """The console's "Create role": the role, its managed policies, and for EC2 the same-named instance profile
    holding it. One action: if any call fails, nothing is kept."""
    params: dict[str, Any] = {"RoleName": name, "AssumeRolePolicyDocument": trust.document(caller.principal.account_id)}
    if description:
        params["Description"] = description
    if tags:
        params["Tags"] = tags
    caller.call("iam", "CreateRole", params)
    for arn in dict.fromkeys(policy_arns):
        caller.call("iam", "AttachRolePolicy", {"RoleName": name, "PolicyArn": arn})
    if trust.for_ec2:
        caller.call("iam", "CreateInstanceProfile", {"InstanceProfileName": name})
        caller.call("iam", "AddRoleToInstanceProfile", {"InstanceProfileName": name, "RoleName": name})


def delete_role(caller: Caller, name: str) -> list[str]:
    """The console's "Delete role": take the role out of its instance profiles, delete the profile of the same name
    (the one the console made with it), detach its managed policies, delete its inline ones, then the role. Returns
    the instance profiles deleted."""
    role = caller.call("iam", "GetRole", {"RoleName": name})["Role"]
    name = role["RoleName"]
    profiles = caller.pages("iam", "ListInstanceProfilesForRole", {"RoleName": name}, "InstanceProfiles")
    attached = caller.pages("iam", "ListAttachedRolePolicies", {"RoleName": name}, "AttachedPolicies")
    inline = caller.pages("iam", "ListRolePolicies", {"RoleName": name}, "PolicyNames")
    deleted = []
    for profile in profiles:
        profile_name = profile["InstanceProfileName"]
        caller.call("iam", "RemoveRoleFromInstanceProfile", {"InstanceProfileName": profile_name, "RoleName": name})
        if profile_name == name:
            caller.call("iam", "DeleteInstanceProfile", {"InstanceProfileName": profile_name})
            deleted.append(profile_name)
    for policy in attached:
        caller.call("iam", "DetachRolePolicy", {"RoleName": name, "PolicyArn": policy["PolicyArn"]})
    for policy_name in inline:
        caller.call("iam", "DeleteRolePolicy", {"RoleName": name, "PolicyName": policy_name})
    caller.call("iam", "DeleteRole", {"RoleName": name})
    return deleted


def trusted_entities(document: str) -> list[str]:
    """How the roles list names who may assume a role: "AWS Service: ec2", "Account: 123456789012", ..."""
    try:
        parsed = json.loads(document)
    except ValueError:
        return []
    statements = parsed.get("Statement", []) if isinstance(parsed, dict) else []
    found: list[str] = []
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal", {})
        if principal == "*":
            found.append("Anyone: *")
            continue
        for kind, values in principal.items() if isinstance(principal, dict) else []:
            for value in values if isinstance(values, list) else [values]:
                found.append(_entity(kind, str(value)))
    return list(dict.fromkeys(found))


def _entity(kind: str, value: str) -> str:
    if kind == "Service":
        return f"AWS Service: {value.removesuffix('.amazonaws.com')}"
    if kind == "AWS":
        account = re.fullmatch(r"arn:aws:iam::(\d{12}):root|(\d{12})", value)
        return f"Account: {account.group(1) or account.group(2)}" if account else value
    if kind == "Federated":
        return f"Identity Provider: {value}"
    return f"{kind}: {value}"
