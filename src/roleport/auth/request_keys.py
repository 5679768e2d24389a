"""Condition keys a call adds to its request context from its own parameters (the Service Authorization Reference's
condition keys for the action), declared per operation in its @operation line (services/registry.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from roleport.context import Params


@dataclass(frozen=True, slots=True)
class RequestKeys:
    """Some condition keys and how a call's parameters give their values; `names` are spelled as the reference
    spells them (aws:RequestTag/${TagKey}), so a test can hold them against it."""

    names: tuple[str, ...]
    read: Callable[[Params], dict[str, list[str]]]


def _request_tags(params: Params) -> dict[str, list[str]]:
    """Tags a call asks to set (IAM Tags; EC2 TagSpecifications), for aws:RequestTag/KEY and aws:TagKeys."""
    tags = {t["Key"]: t.get("Value", "") for t in params.get("Tags", []) if isinstance(t, dict)}
    for spec in params.get("TagSpecifications", []):
        tags.update({t["Key"]: t.get("Value", "") for t in spec.get("Tags", [])})
    if not tags:
        return {}
    keys: dict[str, list[str]] = {f"aws:RequestTag/{key}": [value] for key, value in tags.items()}
    keys["aws:TagKeys"] = list(tags)
    return keys


REQUEST_TAGS = RequestKeys(("aws:RequestTag/${TagKey}", "aws:TagKeys"), _request_tags)

# The tag keys an Untag… call removes.
TAG_KEYS = RequestKeys(("aws:TagKeys",), lambda p: {"aws:TagKeys": list(p["TagKeys"])} if "TagKeys" in p else {})


def param_key(name: str, param: str) -> RequestKeys:
    """A key whose value is one parameter as the call gives it (iam:PolicyARN from PolicyArn), absent when the
    parameter is."""
    return RequestKeys((name,), lambda p: {name: [p[param]]} if param in p else {})


# The managed policy an Attach…/Detach… call names.
POLICY_ARN = param_key("iam:PolicyARN", "PolicyArn")
# The boundary a CreateRole/CreateUser call sets on the new identity.
PERMISSIONS_BOUNDARY = param_key("iam:PermissionsBoundary", "PermissionsBoundary")
