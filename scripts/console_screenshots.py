"""Screenshots of the web console's main pages, for the docs: `python scripts/console_screenshots.py [OUT_DIR]`.

Starts a throwaway roleport server with the console (tests/e2e/console_server.py) on a free port, fills it with a few
roles, profiles and instances through boto3, and photographs each main page in Debian's chromium (driven by
Playwright; no browser is downloaded). Writes docs/console/*.png unless another folder is given.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import EC2_TRUST  # noqa: E402
from tests.e2e.console_browser import ConsoleServer, chromium_missing, launch, sign_in  # noqa: E402
from tests.e2e.principals import allow, user_with_key  # noqa: E402

LAMBDA_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def seed(server: ConsoleServer) -> dict[str, str]:
    iam, ec2 = server.client("iam"), server.client("ec2")
    for name, tags in (("WebServer", [{"Key": "team", "Value": "web"}]), ("BatchWorker", []), ("CiRunner", [])):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=EC2_TRUST, Tags=tags)
        iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
        iam.create_instance_profile(InstanceProfileName=name, Tags=tags)
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    iam.attach_role_policy(RoleName="WebServer", PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
    document = json.dumps({"Version": "2012-10-17", "Statement": [allow("s3:PutObject", "arn:aws:s3:::web-logs/*")]})
    iam.put_role_policy(RoleName="WebServer", PolicyName="write-logs", PolicyDocument=document)
    iam.create_role(RoleName="ImageResizer", AssumeRolePolicyDocument=LAMBDA_TRUST, Description="Resizes uploads")
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-1"}]}]
    ec2.run_instances(
        ImageId="ami-0c02fb55956c7d316",
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        IamInstanceProfile={"Name": "WebServer"},
        TagSpecifications=tags,
    )
    tags[0]["Tags"][0]["Value"] = "batch-1"
    ec2.run_instances(
        ImageId="ami-0c02fb55956c7d316", InstanceType="m5.large", MinCount=1, MaxCount=1, TagSpecifications=tags
    )
    time.sleep(0.5)  # let the instances and the association leave their passing states
    return user_with_key(server, iam, "viewer", allow(["iam:List*", "iam:Get*", "ec2:Describe*"]))


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "console"
    reason = chromium_missing()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        server = ConsoleServer(data_dir=Path(scratch) / "data").start()
        try:
            viewer = seed(server)
            console = server.console
            with sync_playwright() as playwright:
                browser = launch(playwright)
                page = browser.new_page(viewport={"width": 1360, "height": 860})

                def snap(name: str) -> None:
                    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                    print(out / f"{name}.png")

                page.goto(f"{console}/signin")
                snap("signin")
                sign_in(page, console)
                page.wait_for_url("**/iam/roles")
                snap("roles")
                page.goto(f"{console}/iam/roles/WebServer")
                snap("role")
                page.goto(f"{console}/iam/create-role")
                snap("create-role-1-trust")
                page.click("#next")
                page.check("#policy-AmazonS3ReadOnlyAccess")
                snap("create-role-2-permissions")
                page.click("#next")
                page.fill("#name", "ReportBuilder")
                snap("create-role-3-review")
                page.goto(f"{console}/iam/instance-profiles")
                snap("instance-profiles")
                page.goto(f"{console}/iam/instance-profiles/WebServer")
                snap("instance-profile")
                page.goto(f"{console}/ec2/instances")
                page.click("#actions-menu summary")
                snap("instances")
                page.goto(f"{console}/ec2/launch")
                snap("launch")
                instance = page.goto(f"{console}/ec2/instances") and page.get_attribute(
                    "tr[data-instance]", "data-instance"
                )
                page.goto(f"{console}/ec2/instances/{instance}/modify-iam-role")
                page.select_option("#profile", "")
                page.click("#update-iam-role")
                page.fill("#confirm", "Detach")
                snap("modify-iam-role-detach")
                page.goto(f"{console}/iam/roles/ImageResizer/delete")
                snap("delete-role")
                page.click("#sign-out")
                sign_in(page, console, viewer["key"], viewer["secret"])
                page.goto(f"{console}/iam/create-role/review?entity=service&service=ec2&name=NotAllowed")
                page.fill("#name", "NotAllowed")
                page.click("#create")
                snap("access-denied")
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
