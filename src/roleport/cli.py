"""The `roleport` command: serve, env, exec, version. Every refusal is one line on standard error: exit 2 for a
setting roleport cannot start with, 1 for a server or instance that is not as the command needs it."""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import sys
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import uvicorn

from roleport import __version__, server_file, startup
from roleport.config import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CREDENTIAL_LIFETIME_SECONDS,
    DEFAULT_PORT,
    DEFAULT_REGION,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    QUOTA_NAMES,
    ConfigError,
    Settings,
    is_loopback,
    load_root_credentials,
    parse_quotas,
)
from roleport.find_server import Refusal, Target


def _delay_option(flag: str, help_text: str) -> Callable[..., Any]:
    """A number of seconds for eventual consistency (store/journal.py); also settable while the server runs."""
    envvar = "ROLEPORT_" + flag.lstrip("-").replace("-", "_").upper()
    kind = click.FloatRange(min=0, max=86400)
    return click.option(flag, envvar=envvar, default=0.0, show_default=True, type=kind, help=help_text)


_DATA_DIR = click.option(
    "--data-dir",
    envvar="ROLEPORT_DATA_DIR",
    default=".roleport",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the SQLite database, the root credentials and the running server's server.json.",
)
_ROOT_KEYS = (
    click.option("--root-access-key", envvar="ROLEPORT_ROOT_ACCESS_KEY", default=None, help="Fix the root key id."),
    click.option("--root-secret-key", envvar="ROLEPORT_ROOT_SECRET_KEY", default=None, help="Fix the root secret."),
)
_PORT = click.IntRange(min=0, max=65535)


def _apply(command: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    for option in reversed(options):
        command = option(command)
    return command


def _client_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`env` and `exec` find the running server (find_server.py); these only say which, when the data dir does not."""
    return _apply(
        command,
        [
            click.option("--host", envvar="ROLEPORT_HOST", default=None, help="The server's address (with --port)."),
            # 0 (as a shared ROLEPORT_PORT=0 for `serve` gives) names no port: the data dir's server.json does.
            click.option("--port", envvar="ROLEPORT_PORT", default=None, type=_PORT),
            _DATA_DIR,
            click.option("--region", envvar="ROLEPORT_REGION", default=None, help="Region for the SDKs [server's]."),
            *_ROOT_KEYS,
        ],
    )


def _server_options(command: Callable[..., Any]) -> Callable[..., Any]:
    return _apply(
        command,
        [
            click.option(
                "--host", envvar="ROLEPORT_HOST", default="127.0.0.1", show_default=True, help="Address to bind."
            ),
            click.option(
                "--port",
                envvar="ROLEPORT_PORT",
                default=DEFAULT_PORT,
                show_default=True,
                type=_PORT,
                help="Port to listen on; 0 lets the system choose one (the ready line and server.json say which).",
            ),
            click.option(
                "--metadata-host",
                envvar="ROLEPORT_METADATA_HOST",
                default="127.0.0.1",
                show_default=True,
                help="Address the instances' own metadata listeners bind (their credentials are the instance roles').",
            ),
            _DATA_DIR,
            click.option(
                "--database-url",
                envvar="ROLEPORT_DATABASE_URL",
                default=None,
                help="SQLAlchemy URL instead of the SQLite file, e.g. postgresql+psycopg://user@host/db.",
            ),
            click.option("--account-id", envvar="ROLEPORT_ACCOUNT_ID", default=DEFAULT_ACCOUNT_ID, show_default=True),
            click.option("--region", envvar="ROLEPORT_REGION", default=DEFAULT_REGION, show_default=True),
            *_ROOT_KEYS,
            click.option(
                "--state-transition-seconds",
                envvar="ROLEPORT_STATE_TRANSITION_SECONDS",
                default=0.2,
                show_default=True,
                type=click.FloatRange(min=0),
                help="How long EC2 instances and associations stay in a passing state (pending, stopping, ...).",
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
                "--request-timeout",
                envvar="ROLEPORT_REQUEST_TIMEOUT",
                default=DEFAULT_REQUEST_TIMEOUT_SECONDS,
                show_default=True,
                type=click.FloatRange(min=0.1, max=86400),
                help="Seconds a request's headers and body may take to arrive before its connection is closed.",
            ),
            click.option(
                "--quota",
                "quotas",
                envvar="ROLEPORT_QUOTAS",
                multiple=True,
                metavar="NAME=VALUE",
                help=f"Raise or lower an adjustable IAM quota; repeatable. Names: {', '.join(QUOTA_NAMES)}.",
            ),
        ],
    )


def _check_key_pair(access_key: str | None, secret_key: str | None) -> None:
    if bool(access_key) != bool(secret_key):
        raise click.UsageError("--root-access-key and --root-secret-key go together")


def _settings(
    host: str,
    port: int,
    metadata_host: str,
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
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
) -> Settings:
    _check_key_pair(root_access_key, root_secret_key)
    if not (account_id.isdigit() and len(account_id) == 12):
        raise click.UsageError("--account-id must be 12 digits")
    try:
        limits = parse_quotas([part for item in quotas for part in item.split(",") if part])
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    access_key, secret_key = load_root_credentials(data_dir, root_access_key, root_secret_key)
    return Settings(
        host=host,
        port=port,
        metadata_host=metadata_host,
        data_dir=data_dir,
        database_url=startup.database_url(database_url) if database_url else None,
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
        request_timeout=request_timeout,
    )


@click.group()
@click.version_option(__version__, prog_name="roleport")
def cli() -> None:
    """roleport: AWS instance profiles, EC2 associations, STS and IMDS on one local server."""


class _NotRaised(click.ClickException):
    """Stands for click's NoArgsIsHelpError where click (before 8.2) shows the help without raising."""


_BARE_COMMAND: type[click.ClickException] = getattr(click.exceptions, "NoArgsIsHelpError", _NotRaised)


def main() -> None:
    """The console script: click's own error printing (usage, hint, blank line, message) becomes one line."""
    try:
        code = cli.main(prog_name="roleport", standalone_mode=False)
    except _BARE_COMMAND as failure:  # `roleport` alone: its help, as click shows it
        click.echo(failure.format_message(), err=True)
        sys.exit(failure.exit_code)
    except click.ClickException as failure:
        where = failure.ctx.command_path if isinstance(failure, click.UsageError) and failure.ctx else "roleport"
        click.echo(f"{where}: {failure.format_message()}", err=True)
        sys.exit(failure.exit_code)
    except ConfigError as failure:
        click.echo(f"roleport: {failure}", err=True)
        sys.exit(2)
    except Refusal as failure:
        click.echo(f"roleport: {failure}", err=True)
        sys.exit(1)
    except click.Abort:  # Ctrl-C outside the server (the server stops cleanly on its own)
        click.echo("roleport: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


class _Server(uvicorn.Server):
    """Says its ready line once the socket accepts connections, leaves server.json for `env` and `exec` while it
    runs, and stops on SIGINT or SIGTERM as a clean exit, not as a re-raised signal (uvicorn's way: "Aborted!",
    exit 1 from click)."""

    def __init__(self, config: uvicorn.Config, settings: Settings, ready_line: str) -> None:
        super().__init__(config)
        self.settings = settings
        self.ready_line = ready_line
        self.stopped_by = ""

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            settings = self.settings
            record = server_file.ServerFile(
                url=settings.endpoint_url,
                pid=os.getpid(),
                region=settings.region,
                account_id=settings.account_id,
                access_key_id=settings.root_access_key,
                secret_access_key=settings.root_secret_key,
                store=_store_location(settings),
            )
            server_file.write(settings.data_dir, record)
            click.echo(self.ready_line)
            sys.stdout.flush()

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.stopped_by = signal.Signals(sig).name
        super().handle_exit(sig, frame)

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        handlers = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


def _store_location(settings: Settings) -> str:
    return (
        startup.shown_url(settings.database_url)
        if settings.database_url
        else str((settings.data_dir / "roleport.db").resolve())
    )


def _env_command(settings: Settings, keys_given: bool) -> str:
    """The `roleport env` that finds this server: its data dir holds server.json; the port and host say which
    server when the data dir is not at hand, and keys given on the command line go with them."""
    words = ["roleport", "env", "--data-dir", str(settings.data_dir)]
    if settings.port != DEFAULT_PORT or settings.host != "127.0.0.1":
        words += ["--host", urlsplit(settings.endpoint_url).hostname or "127.0.0.1", "--port", str(settings.port)]
    if keys_given:
        words += ["--root-access-key", settings.root_access_key, "--root-secret-key", settings.root_secret_key]
    return shlex.join(words)


@cli.command()
@_server_options
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log one line per request: peer, method, path, service:Action, status, duration, request id.",
)
@click.option(
    "--read-cache/--no-read-cache",
    envvar="ROLEPORT_READ_CACHE",
    default=True,
    show_default=True,
    help="Answer the root's repeated IAM reads from memory while the database is unchanged (SQLite only).",
)
def serve(access_log: bool, read_cache: bool, **options: Any) -> None:
    """Start the server (IAM, STS and EC2 on one port)."""
    os.umask(0o077)  # the database, its WAL files and server.json hold secrets: their owner's alone
    startup.prepare_data_dir(options["data_dir"], lambda line: click.echo(line, err=True))
    settings = dataclasses.replace(_settings(**options), read_cache=read_cache)
    startup.check_store(settings.store_url)
    startup.bind(settings.metadata_host, 0, "--metadata-host").close()  # the listeners bind it later, on demand
    sock = startup.bind(settings.host, settings.port)
    settings = dataclasses.replace(settings, port=sock.getsockname()[1])  # `--port 0`: the one the OS chose
    if not is_loopback(settings.host):
        click.echo(
            f"roleport: serving on {settings.host}: anyone who can reach port {settings.port} can call the API; "
            f"instance metadata (its /imds/ paths and the instances' own listeners) stays for {settings.metadata_host}"
            " (--metadata-host)",
            err=True,
        )

    from roleport import access_log as logging_
    from roleport import limits
    from roleport.app import build_app

    app = build_app(settings)
    if access_log:
        logging_.configure()
        app = logging_.wrap(app)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,  # uvicorn's line lacks the action and request id; access_log.py writes them
        log_level="warning",
        lifespan="on",
        http=limits.http_protocol(settings.request_timeout),  # a deadline for each request to arrive (limits.py)
        loop="auto",
        # aws:SourceIp is the peer's address, as AWS takes it; with uvicorn's default, any local caller could set
        # it with an X-Forwarded-For header, since loopback counts as a trusted proxy.
        proxy_headers=False,
    )
    keys_given = bool(options["root_access_key"])
    ready = (
        f"roleport {__version__} ready on {settings.endpoint_url} (store: {_store_location(settings)}); "
        f'credentials: eval "$({_env_command(settings, keys_given)})"'
    )
    server = _Server(config, settings, ready)
    try:
        server.run(sockets=[sock])
    finally:
        server_file.remove(settings.data_dir, os.getpid())
    if server.stopped_by:
        click.echo(f"roleport stopped ({server.stopped_by})", err=True)


def _target(options: Mapping[str, Any]) -> Target:
    from roleport import find_server

    _check_key_pair(options["root_access_key"], options["root_secret_key"])
    return find_server.locate(
        options["data_dir"],
        options["host"],
        options["port"] or None,
        options["root_access_key"],
        options["root_secret_key"],
        options["region"],
    )


@cli.command()
@_client_options
def env(**options: Any) -> None:
    """Print `export` lines that point the AWS CLI and SDKs at the running roleport, with its root credentials."""
    target = _target(options)
    lines = {
        "AWS_ENDPOINT_URL": target.url,
        "AWS_ACCESS_KEY_ID": target.access_key_id,
        "AWS_SECRET_ACCESS_KEY": target.secret_access_key,
        "AWS_DEFAULT_REGION": target.region,
        "AWS_REGION": target.region,
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


def instance_environment(base: Mapping[str, str], target: Target, metadata_endpoint: str) -> dict[str, str]:
    """The environment of code on an instance: roleport as the AWS endpoint, the instance's metadata service, the
    region, and no keys, profiles or config files (~/.aws stays out of it)."""
    env = {name: value for name, value in base.items() if name not in _NOT_ON_AN_INSTANCE}
    env.update(
        AWS_ENDPOINT_URL=target.url,
        AWS_EC2_METADATA_SERVICE_ENDPOINT=metadata_endpoint,
        AWS_REGION=target.region,
        AWS_DEFAULT_REGION=target.region,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    # The metadata service and roleport are local: an HTTP proxy in the environment must not carry their requests.
    host = urlsplit(metadata_endpoint).hostname or "127.0.0.1"
    for proxy, exempt in (("HTTP_PROXY", "NO_PROXY"), ("http_proxy", "no_proxy")):
        if env.get(proxy):
            env[exempt] = ",".join(part for part in (env.get(exempt, ""), host) if part)
    return env


@cli.command("exec")
@_client_options
@click.argument("instance_id")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(instance_id: str, command: tuple[str, ...], **options: Any) -> None:
    """Run COMMAND as code on instance INSTANCE_ID: its SDKs find the instance's role through its metadata service.
    Put `--` before COMMAND so that its own options are not read as roleport's.

    \b
    roleport exec i-0abc... -- aws sts get-caller-identity
    """
    from roleport import find_server

    target = _target(options)
    refusal = find_server.instance_refusal(target, instance_id)
    if refusal:
        raise Refusal(refusal)
    env = instance_environment(os.environ, target, find_server.metadata_endpoint(target, instance_id))
    try:
        os.execvpe(command[0], list(command), env)
    except OSError as failure:
        cannot = click.ClickException(f"cannot run {command[0]}: {failure.strerror}")
        cannot.exit_code = 127  # as a shell answers a command it cannot run
        raise cannot from None
