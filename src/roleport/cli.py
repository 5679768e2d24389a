"""The `roleport` command: serve, env, exec, version."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import click
import uvicorn

from roleport import __version__
from roleport.config import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CREDENTIAL_LIFETIME_SECONDS,
    DEFAULT_PORT,
    DEFAULT_REGION,
    QUOTA_NAMES,
    Settings,
    load_root_credentials,
    parse_quotas,
)


def _delay_option(flag: str, help_text: str) -> Callable[..., Any]:
    """A number of seconds for eventual consistency (store/journal.py); also settable while the server runs."""
    envvar = "ROLEPORT_" + flag.lstrip("-").replace("-", "_").upper()
    kind = click.FloatRange(min=0, max=86400)
    return click.option(flag, envvar=envvar, default=0.0, show_default=True, type=kind, help=help_text)


def _server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by `serve`, `env` and `exec`, so `env` and `exec` describe the server `serve` would start."""
    options = [
        click.option("--host", envvar="ROLEPORT_HOST", default="127.0.0.1", show_default=True, help="Address to bind."),
        click.option("--port", envvar="ROLEPORT_PORT", default=DEFAULT_PORT, show_default=True, type=int),
        click.option(
            "--data-dir",
            envvar="ROLEPORT_DATA_DIR",
            default=".roleport",
            show_default=True,
            type=click.Path(file_okay=False, path_type=Path),
            help="Folder for the SQLite database and the root credentials.",
        ),
        click.option(
            "--database-url",
            envvar="ROLEPORT_DATABASE_URL",
            default=None,
            help="SQLAlchemy URL instead of the SQLite file, e.g. postgresql+psycopg://user@host/db.",
        ),
        click.option("--account-id", envvar="ROLEPORT_ACCOUNT_ID", default=DEFAULT_ACCOUNT_ID, show_default=True),
        click.option("--region", envvar="ROLEPORT_REGION", default=DEFAULT_REGION, show_default=True),
        click.option("--root-access-key", envvar="ROLEPORT_ROOT_ACCESS_KEY", default=None, help="Fix the root key id."),
        click.option("--root-secret-key", envvar="ROLEPORT_ROOT_SECRET_KEY", default=None, help="Fix the root secret."),
        click.option(
            "--state-transition-seconds",
            envvar="ROLEPORT_STATE_TRANSITION_SECONDS",
            default=0.2,
            show_default=True,
            type=click.FloatRange(min=0),
            help="How long EC2 instances and associations stay in a passing state (pending, stopping, associating...).",
        ),
        click.option(
            "--credential-lifetime-seconds",
            envvar="ROLEPORT_CREDENTIAL_LIFETIME_SECONDS",
            default=DEFAULT_CREDENTIAL_LIFETIME_SECONDS,
            show_default=True,
            type=click.IntRange(min=1),
            help="How long the role credentials an instance's metadata service hands out stay valid.",
        ),
        click.option(
            "--clock",
            envvar="ROLEPORT_CLOCK",
            type=click.Choice(["real", "controlled"]),
            default="real",
            show_default=True,
            help="controlled: the server's clock stands still until POST /_roleport/clock moves it.",
        ),
        _delay_option(
            "--propagation-delay",
            "Seconds an IAM change takes to reach EC2, instance metadata, authorization and STS (0: at once).",
        ),
        _delay_option("--propagation-jitter", "Up to this many seconds more, at random, for each IAM change."),
        _delay_option(
            "--association-delay", "Seconds an instance's association change takes to reach its metadata service."
        ),
        click.option(
            "--quota",
            "quotas",
            envvar="ROLEPORT_QUOTAS",
            multiple=True,
            metavar="NAME=VALUE",
            help=f"Raise or lower an adjustable IAM quota; repeatable. Names: {', '.join(QUOTA_NAMES)}.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _settings(
    host: str,
    port: int,
    data_dir: Path,
    database_url: str | None,
    account_id: str,
    region: str,
    root_access_key: str | None,
    root_secret_key: str | None,
    quotas: tuple[str, ...] = (),
    state_transition_seconds: float = 0.2,
    credential_lifetime_seconds: int = DEFAULT_CREDENTIAL_LIFETIME_SECONDS,
    clock: str = "real",
    propagation_delay: float = 0.0,
    propagation_jitter: float = 0.0,
    association_delay: float = 0.0,
) -> Settings:
    if bool(root_access_key) != bool(root_secret_key):
        raise click.UsageError("--root-access-key and --root-secret-key go together")
    if not (account_id.isdigit() and len(account_id) == 12):
        raise click.UsageError("--account-id must be 12 digits")
    try:
        limits = parse_quotas([part for item in quotas for part in item.split(",") if part])
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = load_root_credentials(data_dir, root_access_key, root_secret_key)
    return Settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        account_id=account_id,
        region=region,
        root_access_key=access_key,
        root_secret_key=secret_key,
        quotas=limits,
        state_transition_seconds=state_transition_seconds,
        credential_lifetime_seconds=credential_lifetime_seconds,
        clock=clock,
        propagation_delay=propagation_delay,
        propagation_jitter=propagation_jitter,
        association_delay=association_delay,
    )


@click.group()
@click.version_option(__version__, prog_name="roleport")
def main() -> None:
    """roleport: AWS instance profiles, EC2 associations, STS and IMDS on one local server."""


class _Server(uvicorn.Server):
    """Says one line once the socket accepts connections, not before."""

    def __init__(self, config: uvicorn.Config, ready_line: str) -> None:
        super().__init__(config)
        self.ready_line = ready_line

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            click.echo(self.ready_line, err=False)
            sys.stdout.flush()


@main.command()
@_server_options
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="Log every request.")
@click.option(
    "--read-cache/--no-read-cache",
    envvar="ROLEPORT_READ_CACHE",
    default=True,
    show_default=True,
    help="Answer the root's repeated IAM reads from memory while the database is unchanged (SQLite only).",
)
def serve(access_log: bool, read_cache: bool, **options: Any) -> None:
    """Start the server (IAM, STS and EC2 on one port)."""
    from roleport.app import build_app

    settings = dataclasses.replace(_settings(**options), read_cache=read_cache)
    config = uvicorn.Config(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=access_log,
        log_level="warning",
        lifespan="on",
        http="auto",
        loop="auto",
        # aws:SourceIp is the peer's address, as AWS takes it; with uvicorn's default, any local caller could set
        # it with an X-Forwarded-For header, since loopback counts as a trusted proxy.
        proxy_headers=False,
    )
    location = settings.database_url or str((settings.data_dir / "roleport.db").resolve())
    ready = (
        f"roleport {__version__} ready on {settings.endpoint_url} (store: {location}); "
        f'credentials: eval "$(roleport env --data-dir {shlex.quote(str(settings.data_dir))})"'
    )
    _Server(config, ready).run()


@main.command()
@_server_options
def env(**options: Any) -> None:
    """Print `export` lines that point the AWS CLI and SDKs at roleport with the root credentials."""
    settings = _settings(**options)
    lines = {
        "AWS_ENDPOINT_URL": settings.endpoint_url,
        "AWS_ACCESS_KEY_ID": settings.root_access_key,
        "AWS_SECRET_ACCESS_KEY": settings.root_secret_key,
        "AWS_DEFAULT_REGION": settings.region,
        "AWS_REGION": settings.region,
    }
    for name, value in lines.items():
        click.echo(f"export {name}={shlex.quote(value)}")
    click.echo("unset AWS_SESSION_TOKEN AWS_PROFILE")


# What could otherwise make SDKs use credentials other than the instance's: keys and profiles, and the providers that
# botocore and the JavaScript SDK try before instance metadata (container credentials, web identity).
_NOT_ON_AN_INSTANCE = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
)


def instance_environment(base: Mapping[str, str], settings: Settings, metadata_endpoint: str) -> dict[str, str]:
    """The environment of code on an instance: roleport as the AWS endpoint, the instance's metadata service, the
    region, and no keys, profiles or config files (~/.aws stays out of it)."""
    env = {name: value for name, value in base.items() if name not in _NOT_ON_AN_INSTANCE}
    env.update(
        AWS_ENDPOINT_URL=settings.endpoint_url,
        AWS_EC2_METADATA_SERVICE_ENDPOINT=metadata_endpoint,
        AWS_REGION=settings.region,
        AWS_DEFAULT_REGION=settings.region,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    # The metadata service and roleport are local: an HTTP proxy in the environment must not carry their requests.
    host = urlsplit(metadata_endpoint).hostname or "127.0.0.1"
    for proxy, exempt in (("HTTP_PROXY", "NO_PROXY"), ("http_proxy", "no_proxy")):
        if env.get(proxy):
            env[exempt] = ",".join(part for part in (env.get(exempt, ""), host) if part)
    return env


def _metadata_endpoint(settings: Settings, instance_id: str) -> str:
    """Ask the server where the instance's metadata listener is, signing with the root key."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{settings.endpoint_url}/_roleport/instances/{quote(instance_id, safe='')}/metadata-endpoint"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(settings.root_access_key, settings.root_secret_key), "roleport", settings.region).add_auth(
        request
    )
    prepared = request.prepare()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the server is local: never via a proxy
    try:
        with opener.open(urllib.request.Request(url, headers=dict(prepared.headers)), timeout=10) as response:
            return str(json.load(response)["Endpoint"])
    except urllib.error.HTTPError as failure:
        with failure:
            try:
                found = json.load(failure)["Error"]
                detail = f"{found['Code']}: {found['Message']}"
            except (ValueError, KeyError, TypeError):
                detail = f"HTTP {failure.code}"
        hint = " (are --data-dir or --root-access-key/--root-secret-key the server's?)" if failure.code == 403 else ""
        raise click.ClickException(f"roleport at {settings.endpoint_url} refused: {detail}{hint}") from None
    except OSError as failure:
        raise click.ClickException(f"cannot reach roleport at {settings.endpoint_url}: {failure}") from None


@main.command("exec")
@_server_options
@click.argument("instance_id")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(instance_id: str, command: tuple[str, ...], **options: Any) -> None:
    """Run COMMAND as code on instance INSTANCE_ID: its SDKs find the instance's role through its metadata service.
    Put `--` before COMMAND so that its own options are not read as roleport's.

    \b
    roleport exec i-0abc... -- aws sts get-caller-identity
    """
    settings = _settings(**options)
    env = instance_environment(os.environ, settings, _metadata_endpoint(settings, instance_id))
    try:
        os.execvpe(command[0], list(command), env)
    except OSError as failure:
        refusal = click.ClickException(f"cannot run {command[0]}: {failure.strerror}")
        refusal.exit_code = 127  # as a shell answers a command it cannot run
        raise refusal from None
