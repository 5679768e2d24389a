"""EC2 pages: the instances list with its Actions (instance state; Security → Modify IAM role) and Launch instance."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from roleport.console.actions import Caller
from roleport.console.views_iam import status_of
from roleport.console.web import Visit
from roleport.errors import AwsError

# What the launch form offers; any AMI id of EC2's form is accepted by RunInstances here.
IMAGES = (
    ("ami-0c02fb55956c7d316", "Amazon Linux 2023 AMI"),
    ("ami-0fc5d935ebf8bc3bc", "Ubuntu Server 22.04 LTS"),
    ("ami-0a3c3a20c09d6f377", "Debian 12"),
)
INSTANCE_TYPES = ("t2.micro", "t3.micro", "t3.small", "t4g.micro", "m5.large", "c6g.large")
STATE_ACTIONS = {"stop": ("StopInstances", "stopped"), "start": ("StartInstances", "started")}
STATE_ACTIONS["terminate"] = ("TerminateInstances", "terminated")
ACTIVE = ("associating", "associated")


def _profile_names(caller: Caller) -> tuple[list[str], AwsError | None]:
    found, error = caller.attempt_pages("iam", "ListInstanceProfiles", {"MaxItems": 1000}, "InstanceProfiles")
    return sorted((p["InstanceProfileName"] for p in found), key=str.lower), error


def _associations(caller: Caller, instance_ids: list[str]) -> tuple[dict[str, dict[str, Any]], AwsError | None]:
    """Each instance's current association: the active one, else the one still being taken off."""
    if not instance_ids:
        return {}, None
    filters = [{"Name": "instance-id", "Values": instance_ids}]
    listed = caller.attempt("ec2", "DescribeIamInstanceProfileAssociations", {"Filters": filters})
    found: dict[str, dict[str, Any]] = {}
    for association in listed.result.get("IamInstanceProfileAssociations", []):
        current = found.get(association["InstanceId"])
        if current is None or association["State"] in ACTIVE:
            found[association["InstanceId"]] = association
    return found, listed.error


def _roles_of_profiles(caller: Caller, names: set[str]) -> dict[str, str]:
    """The role in each instance profile, as the console's "IAM Role" column shows it; unreadable ones are left out."""
    roles: dict[str, str] = {}
    for name in sorted(names):
        got = caller.attempt("iam", "GetInstanceProfile", {"InstanceProfileName": name})
        held = got.result.get("InstanceProfile", {}).get("Roles", [])
        if held:
            roles[name] = held[0]["RoleName"]
    return roles


def _name_tag(instance: dict[str, Any]) -> str:
    return next((t["Value"] for t in instance.get("Tags", []) if t["Key"] == "Name"), "")


def instances(visit: Visit) -> Response:
    params: dict[str, Any] = {"MaxResults": visit.page_size()}
    if visit.value("token"):
        params["NextToken"] = visit.value("token")
    with visit.act() as caller:
        listed = caller.attempt("ec2", "DescribeInstances", params)
        found = [i for r in listed.result.get("Reservations", []) for i in r["Instances"]]
        associations, associations_error = _associations(caller, [i["InstanceId"] for i in found])
        profile_names = {a["IamInstanceProfile"]["Arn"].rpartition("/")[2] for a in associations.values()}
        roles = _roles_of_profiles(caller, profile_names)
    rows = []
    for instance in found:
        association = associations.get(instance["InstanceId"])
        profile_name = association["IamInstanceProfile"]["Arn"].rpartition("/")[2] if association else ""
        rows.append(
            {
                "id": instance["InstanceId"],
                "name": _name_tag(instance),
                "state": instance["State"]["Name"],
                "type": instance["InstanceType"],
                "profile": profile_name,
                "role": roles.get(profile_name, ""),
                "association": association,
                "launched": instance["LaunchTime"],
            }
        )
    pager = visit.pager("/ec2/instances", listed.result.get("NextToken"), param="token")
    error = listed.error or associations_error
    return visit.render("instances.html", instances=rows, error=error, pager=pager)


def instances_action(visit: Visit) -> Response:
    """The instances list's Actions: Instance state → Stop/Start/Terminate, Security → Modify IAM role."""
    action, chosen = visit.value("action"), visit.values("instance_id")
    if action == "modify-iam-role":
        if len(chosen) != 1:
            return visit.redirect("/ec2/instances", notice="choose-one")
        return visit.redirect(f"/ec2/instances/{quote(chosen[0], safe='')}/modify-iam-role")
    if action not in STATE_ACTIONS:
        return visit.redirect("/ec2/instances")
    if not chosen:
        return visit.redirect("/ec2/instances", notice="choose-some")
    operation, notice = STATE_ACTIONS[action]
    try:
        with visit.act(write=True) as caller:
            caller.call("ec2", operation, {"InstanceIds": chosen})
    except AwsError as failure:
        return visit.render("error.html", status=status_of(failure), title="Instance state", message=failure.message)
    return visit.redirect("/ec2/instances", notice=notice, subject=", ".join(chosen))


def launch(visit: Visit) -> Response:
    form = {
        "name": visit.value("name").strip(),
        "image": visit.value("image", IMAGES[0][0]).strip(),
        "type": visit.value("type", INSTANCE_TYPES[0]),
        "count": visit.value("count", "1"),
        "profile": visit.value("profile"),
    }
    error: str | None = None
    status = 200
    if visit.request.method == "POST":
        try:
            with visit.act(write=True) as caller:
                launched = caller.call("ec2", "RunInstances", _launch_params(form))
        except AwsError as failure:
            error, status = failure.message, status_of(failure)
        else:
            ids = ", ".join(i["InstanceId"] for i in launched["Instances"])
            return visit.redirect("/ec2/instances", notice="launched", subject=ids)
    with visit.act() as caller:
        names, names_error = _profile_names(caller)
    return visit.render(
        "launch.html",
        status=status,
        form=form,
        images=IMAGES,
        types=INSTANCE_TYPES,
        profiles=names,
        profiles_error=names_error,
        error=error,
    )


def _launch_params(form: dict[str, str]) -> dict[str, Any]:
    count = int(form["count"]) if form["count"].isdigit() else 0
    params: dict[str, Any] = {
        "ImageId": form["image"],
        "InstanceType": form["type"],
        "MinCount": count,
        "MaxCount": count,
    }
    if form["profile"]:
        params["IamInstanceProfile"] = {"Name": form["profile"]}
    if form["name"]:
        params["TagSpecifications"] = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": form["name"]}]}]
    return params


def modify_role(visit: Visit) -> Response:
    """Actions → Security → Modify IAM role: attach (associate), replace, or "No IAM Role" (detach, after typing
    "Detach" to confirm, as the console asks)."""
    instance_id = visit.request.path_params["instance_id"]
    choice = visit.value("profile")
    error: str | None = None
    status = 200
    confirming = False
    if visit.request.method == "POST":
        try:
            with visit.act(write=True) as caller:
                outcome = _modify(caller, instance_id, choice, visit.value("confirm"))
        except AwsError as failure:
            error, status = failure.message, status_of(failure)
        else:
            if outcome == "confirm":
                confirming = True
                if visit.value("confirm_step"):
                    error, status = "To confirm, type Detach in the field.", 400
            else:
                return visit.redirect("/ec2/instances", notice=outcome, subject=choice, target=instance_id)
    with visit.act() as caller:
        listed = caller.attempt("ec2", "DescribeInstances", {"InstanceIds": [instance_id]})
        if listed.error is not None:
            message = listed.error.message
            return visit.render("error.html", status=status_of(listed.error), title=instance_id, message=message)
        instance = listed.result["Reservations"][0]["Instances"][0]
        associations, _ = _associations(caller, [instance_id])
        names, names_error = _profile_names(caller)
    association = associations.get(instance_id)
    current = association["IamInstanceProfile"]["Arn"].rpartition("/")[2] if association else ""
    return visit.render(
        "modify_role.html",
        status=status,
        instance=instance,
        name=_name_tag(instance),
        association=association,
        current=current,
        chosen=choice if visit.request.method == "POST" else current,
        profiles=names,
        profiles_error=names_error,
        confirming=confirming,
        error=error,
    )


def _modify(caller: Caller, instance_id: str, choice: str, confirm: str) -> str:
    """Runs the change and names the notice for it, or returns "confirm" when a detach is not confirmed yet."""
    associations, _ = _associations(caller, [instance_id])
    current = associations.get(instance_id)
    active = current if current and current["State"] in ACTIVE else None
    if not choice:
        if active is None:
            raise AwsError("IncorrectState", f"No IAM role is attached to instance {instance_id}.")
        if confirm != "Detach":
            return "confirm"
        caller.call("ec2", "DisassociateIamInstanceProfile", {"AssociationId": active["AssociationId"]})
        return "detached"
    if active is None:
        caller.call(
            "ec2", "AssociateIamInstanceProfile", {"InstanceId": instance_id, "IamInstanceProfile": {"Name": choice}}
        )
        return "attached"
    if active["IamInstanceProfile"]["Arn"].rpartition("/")[2] == choice:
        return "unchanged"
    # AWS: replace rather than disassociate + associate, so the instance is never without credentials.
    params = {"AssociationId": active["AssociationId"], "IamInstanceProfile": {"Name": choice}}
    caller.call("ec2", "ReplaceIamInstanceProfileAssociation", params)
    return "replaced"
