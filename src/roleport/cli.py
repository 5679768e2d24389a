"""The `roleport` command: serve, env, version."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import uvicorn

from roleport import __version__
from roleport.config import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_PORT,
    DEFAULT_REGION,
    QUOTA_NAMES,
    Settings,
    load_root_credentials,
    parse_quotas,
)


def _server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by `serve` and `env`, so `env` describes the server `serve` would start."""
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
def serve(access_log: bool, **options: Any) -> None:
    """Start the server (IAM, STS and EC2 on one port)."""
    from roleport.app import build_app

    settings = _settings(**options)
    config = uvicorn.Config(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=access_log,
        log_level="warning",
        lifespan="on",
        http="auto",
        loop="auto",
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
