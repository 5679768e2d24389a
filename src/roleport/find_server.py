"""How `roleport env` and `roleport exec` find the running server and its root keys: from what the server itself
wrote in its data dir (server_file.py), or from flags that name it; and they check that it answers, with those keys,
before they print or run anything. They never make keys of their own."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from roleport import server_file
from roleport.config import DEFAULT_PORT, DEFAULT_REGION

# The server is local: never through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_TIMEOUT = 10


class Refusal(Exception):
    """Why env or exec cannot go on, in one line."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    access_key_id: str
    secret_access_key: str
    region: str


def locate(
    data_dir: Path,
    host: str | None,
    port: int | None,
    access_key: str | None,
    secret_key: str | None,
    region: str | None,
) -> Target:
    """The server that `--host`/`--port` name, or else the one that runs on `data_dir`; its keys from the flags or
    from the server's own file. Raises Refusal when there is none, it does not answer, or it does not take the keys
    as the root's (GetCallerIdentity, signed as any SDK signs)."""
    try:
        record = server_file.read(data_dir)
    except server_file.UnreadableServerFile as failure:
        raise Refusal(str(failure)) from None
    if host is None and port is None:
        if record is None:
            raise Refusal(
                f"no roleport server is running on the data dir {data_dir} (no {data_dir / server_file.NAME}): "
                f"start one with `roleport serve --data-dir {data_dir}`, or give the --data-dir it uses"
            )
        url = record.url
    else:
        shown = "127.0.0.1" if host in (None, "", "0.0.0.0", "::") else host
        shown = f"[{shown}]" if ":" in shown else shown
        url = f"http://{shown}:{port or DEFAULT_PORT}"
    ours = record is not None and record.url == url
    _answers(url, data_dir, ours)
    if access_key and secret_key:
        keys = access_key, secret_key
    elif ours and record is not None:
        keys = record.access_key_id, record.secret_access_key
    else:
        raise Refusal(
            f"no root keys for the roleport server at {url}: give --root-access-key and --root-secret-key, or the "
            "--data-dir that server uses"
        )
    target = Target(url, *keys, region or (record.region if ours and record is not None else DEFAULT_REGION))
    status, found = signed(target, "POST", "/", b"Action=GetCallerIdentity&Version=2011-06-15", "sts")
    if status != 200:
        raise Refusal(f"roleport at {url} refused the root keys {target.access_key_id}: {found}")
    if ":root</Arn>" not in found:
        raise Refusal(f"the keys {target.access_key_id} are not the root's at {url}")
    return target


def _answers(url: str, data_dir: Path, ours: bool) -> None:
    try:
        with _OPENER.open(f"{url}/_roleport/health", timeout=_TIMEOUT) as response:
            json.load(response)
    except (OSError, ValueError, http.client.HTTPException):
        where = f"the server of the data dir {data_dir} ({url}) has stopped" if ours else f"nothing answers at {url}"
        raise Refusal(f"{where}: start roleport with `roleport serve --data-dir {data_dir}`") from None


def signed(target: Target, method: str, path: str, body: bytes, service: str) -> tuple[int, str]:
    """One request signed with the root keys; (status, text of the answer or of its error)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{target.url}{path}"
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"} if body else {}
    request = AWSRequest(method=method, url=url, data=body or None, headers=headers)
    credentials = Credentials(target.access_key_id, target.secret_access_key)
    SigV4Auth(credentials, service, target.region).add_auth(request)
    prepared = request.prepare()
    outgoing = urllib.request.Request(url, data=body or None, method=method, headers=dict(prepared.headers))
    try:
        with _OPENER.open(outgoing, timeout=_TIMEOUT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as failure:
        with failure:
            return failure.code, _error_text(failure.read())
    except (OSError, ValueError, http.client.HTTPException) as failure:
        raise Refusal(f"cannot reach roleport at {target.url}: {failure}") from None


def _error_text(raw: bytes) -> str:
    """`Code: Message` from an AWS error document (XML) or roleport's own (JSON)."""
    text = raw.decode(errors="replace")
    try:
        found = json.loads(text)["Error"]
        return f"{found['Code']}: {found['Message']}"
    except (ValueError, KeyError, TypeError):
        pass
    code = text.partition("<Code>")[2].partition("</Code>")[0]
    message = text.partition("<Message>")[2].partition("</Message>")[0]
    return f"{code}: {message}" if code else text[:200]


def metadata_endpoint(target: Target, instance_id: str) -> str:
    """Where the instance's own metadata listener is (the server opens it on demand)."""
    path = f"/_roleport/instances/{quote(instance_id, safe='')}/metadata-endpoint"
    status, found = signed(target, "GET", path, b"", "roleport")
    if status != 200:
        raise Refusal(f"roleport at {target.url} refused: {found}")
    return str(json.loads(found)["Endpoint"])


def instance_refusal(target: Target, instance_id: str) -> str | None:
    """Why code cannot run on the instance now (it does not exist, is not running, or has no instance profile, so
    its SDKs would find no credentials), or None."""
    body = f"Action=DescribeInstances&Version=2016-11-15&InstanceId.1={quote(instance_id, safe='')}".encode()
    status, found = signed(target, "POST", "/", body, "ec2")
    if status != 200:
        return f"instance {instance_id}: {found}"
    state = found.partition("<instanceState>")[2].partition("<name>")[2].partition("</name>")[0]
    if state != "running":
        hint = {
            "pending": f"wait for it: aws ec2 wait instance-running --instance-ids {instance_id}",
            "stopped": f"start it: aws ec2 start-instances --instance-ids {instance_id}",
        }.get(state, "code runs only on a running instance")
        return f"instance {instance_id} is {state}: {hint}"
    if "<iamInstanceProfile>" not in found:
        return (
            f"instance {instance_id} has no IAM instance profile, so code on it finds no credentials: "
            f"aws ec2 associate-iam-instance-profile --instance-id {instance_id} --iam-instance-profile Name=PROFILE"
        )
    return None
