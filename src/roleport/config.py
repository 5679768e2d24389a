"""Settings for one roleport server, from flags and environment variables."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from roleport import ids

DEFAULT_PORT = 7665
DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
# How long the role credentials an instance's metadata service hands out last: six hours, as EC2's do (their
# Expiration is about six hours after LastUpdated); they are rotated before they expire (see imds/service.py).
DEFAULT_CREDENTIAL_LIFETIME_SECONDS = 21600
CREDENTIALS_FILE = "root-credentials.json"
# How long a request's head and body may take to arrive, from the connection's opening (or the request's first byte
# on a kept-alive connection) to its last byte, before the connection is closed (limits.py).
DEFAULT_REQUEST_TIMEOUT_SECONDS = 30.0
# Quota values are stored in integer columns; nothing real comes near this.
MAX_QUOTA = 2**31 - 1


class ConfigError(Exception):
    """A setting roleport cannot start with; the command line says it in one line and exits 2."""


@dataclass(frozen=True, slots=True)
class Quotas:
    """IAM quotas (IAM User Guide, "IAM and AWS STS quotas"); the adjustable ones can be changed per server."""

    roles_per_account: int = 1000
    instance_profiles_per_account: int = 1000
    managed_policies_per_role: int = 10
    customer_managed_policies_per_account: int = 1500
    tags_per_resource: int = 50
    policy_versions: int = 5


# Only the quotas AWS lets an account raise; the others (tags per resource, policy versions) are fixed in AWS too.
ADJUSTABLE_QUOTAS = (
    "roles_per_account",
    "instance_profiles_per_account",
    "managed_policies_per_role",
    "customer_managed_policies_per_account",
)
QUOTA_NAMES = tuple(name.replace("_", "-") for name in ADJUSTABLE_QUOTAS)


def parse_quotas(items: tuple[str, ...] | list[str]) -> Quotas:
    """`NAME=VALUE` pairs, e.g. `instance-profiles-per-account=20000`, over AWS's defaults."""
    values: dict[str, int] = {}
    for item in items:
        name, _, value = item.partition("=")
        key = name.strip().replace("-", "_")
        if key not in ADJUSTABLE_QUOTAS:
            raise ValueError(f"unknown quota {name.strip()!r} in {item!r}; quotas: {', '.join(QUOTA_NAMES)}")
        if not (value.strip().isascii() and value.strip().isdigit()) or not 1 <= int(value) <= MAX_QUOTA:
            raise ValueError(f"quota {name.strip()} must be a whole number from 1 to {MAX_QUOTA}, not {value!r}")
        values[key] = int(value)
    return Quotas(**values)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = Path(".roleport")
    database_url: str | None = None
    account_id: str = DEFAULT_ACCOUNT_ID
    region: str = DEFAULT_REGION
    root_access_key: str = ""
    root_secret_key: str = ""
    quotas: Quotas = field(default_factory=Quotas)
    # How long EC2's passing states last (pending, stopping, shutting-down, associating, disassociating), so clients
    # and waiters see them; the stable state follows once the time has passed.
    state_transition_seconds: float = 0.2
    # "real", or "controlled": the server's clock stands still until POST /_roleport/clock moves it.
    clock: str = "real"
    # How long the role credentials an instance's metadata service hands out stay valid.
    credential_lifetime_seconds: int = DEFAULT_CREDENTIAL_LIFETIME_SECONDS
    # Eventual consistency (store/journal.py), as the server starts; POST /_roleport/propagation changes them later.
    # How long an IAM change takes to reach EC2, the metadata service, authorization and STS, plus a random 0..jitter.
    propagation_delay: float = 0.0
    propagation_jitter: float = 0.0
    # How long replacing or removing an instance's association takes to reach its metadata service.
    association_delay: float = 0.0
    # Keep the answers to the root's IAM reads while the store is unchanged (read_cache.py).
    read_cache: bool = True
    # Where each instance's own metadata listener binds: loopback unless asked, since whoever reaches it gets the
    # instance role's credentials (`--host 0.0.0.0` must not expose them to the network).
    metadata_host: str = "127.0.0.1"
    # How long a request's head and body may take to arrive before its connection is closed (limits.py), on the
    # main port and the metadata listeners: a client trickling bytes must not hold a descriptor for good.
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'roleport.db').resolve()}"

    @property
    def endpoint_url(self) -> str:
        """Where local clients reach the server: a wildcard address is reached on loopback, IPv6 in brackets."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::", "[::]") else self.host.strip("[]")
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """Whether an address (or a peer's) is this machine's loopback, which nothing on the network reaches."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    mapped = getattr(address, "ipv4_mapped", None)  # a dual-stack listener sees 127.0.0.1 as ::ffff:127.0.0.1
    return (mapped or address).is_loopback


def load_root_credentials(data_dir: Path, access_key: str | None, secret_key: str | None) -> tuple[str, str]:
    """Flags win; otherwise the pair kept in the data dir, made on first start and readable only by its owner."""
    if access_key and secret_key:
        return access_key, secret_key
    path = data_dir / CREDENTIALS_FILE
    if not path.exists():
        pair = {"AccessKeyId": ids.access_key_id(), "SecretAccessKey": ids.secret_access_key()}
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another server on the same data dir made it first; use theirs
        except OSError as failure:
            raise ConfigError(f"cannot write the root key pair to {path}: {failure.strerror}") from None
        else:
            with os.fdopen(descriptor, "w") as handle:
                json.dump(pair, handle)
    try:
        saved = json.loads(path.read_text())
        return str(saved["AccessKeyId"]), str(saved["SecretAccessKey"])
    except OSError as failure:
        raise ConfigError(f"cannot read the root key pair from {path}: {failure.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path} does not hold a root key pair; remove it to make a new one") from None
