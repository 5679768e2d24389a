"""The instance metadata service of every instance: IMDSv2 session tokens, the meta-data tree, and the role
credentials it hands out.

Addressing. On EC2 every instance reaches its own metadata service at the same address, 169.254.169.254; here one
server stands in for many instances, so the address itself must say which instance is asking. There are two forms:

* Path form, on the main port: `http://HOST:PORT/imds/i-0abc.../`. botocore (boto3, the aws CLI) keeps the path of
  `AWS_EC2_METADATA_SERVICE_ENDPOINT` and appends `latest/api/token` etc. to it (botocore.utils.IMDSFetcher).
* Dedicated form: `http://HOST:PORT2/`, a listener of the instance's own on a port of its own (transport.py),
  opened on demand by `GET /_roleport/instances/{id}/metadata-endpoint` and closed once the instance is terminated
  (or gone after a reset), on Settings.metadata_host (loopback unless asked). The AWS SDK
  for JavaScript v3 keeps only scheme, host and port of the variable: @smithy/credential-provider-imds parses it and
  then sends `{...endpoint, path: "/latest/api/token"}`, replacing whatever path it had. The same holds for any
  client that hard-codes absolute paths, so `roleport exec` hands out this form.

Both forms answer the same way, from `MetadataService.handle`. An instance that is not pending or running has no
metadata service: the dedicated listener closes the connection without an answer, as a stopped machine would not
answer, and the path form answers 404 as for an unknown instance. Tokens are stateless (tokens.py: an HMAC over
the instance id and the expiry, with a key kept in `server_secrets`), so every server process on the database accepts
them and they survive restarts. Credentials are real role sessions (auth/sessions.py), verified when used and rotated
before they expire.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import bindparam, select

from roleport.auth import sessions as role_sessions
from roleport.auth import trust
from roleport.clock import Clock
from roleport.config import Settings
from roleport.errors import AwsError
from roleport.imds.replies import Reply, error, flat_json, listing, text
from roleport.imds.tokens import make_token, token_ttl, token_valid
from roleport.services.ec2_lifecycle import INSTANCE_STATES, associations, instances
from roleport.store import journal, schema, sql
from roleport.store.db import Prepared, Row, Store, Tx

TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"
# AWS: "We make new credentials available at least five minutes before the expiration of the old credentials"
# (EC2 User Guide, instance metadata security credentials). botocore refreshes 15 minutes before expiry and, handed
# credentials with less than 12-20 minutes left, "extends" them instead of using new ones; rotating 15 minutes ahead
# gives it fresh ones exactly when it asks. Short lifetimes (tests) rotate at half their lifetime.
REFRESH_WINDOW = timedelta(minutes=15)
EC2_SERVICE = "ec2.amazonaws.com"
KEY_NAME = "imds-token-key"
DOC_URL = (
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_iam-ec2.html#troubleshoot_iam-ec2_errors-info-doc"
)
SERVED_STATES = ("pending", "running")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- who may have credentials ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def ec2_may_assume(trust_policy: str) -> bool:
    """Whether a role's trust policy lets EC2 (the service principal `ec2.amazonaws.com`) call sts:AssumeRole.
    EC2 brings no request context, so a statement whose condition needs a key does not match."""
    try:
        verdict = trust.evaluate_trust(trust_policy, trust.Caller(service=EC2_SERVICE), "sts:AssumeRole", {})
    except AwsError:
        return False
    return verdict.allowed


# --- reads ----------------------------------------------------------------------------------------------------------

profiles, profile_roles, roles = schema.instance_profiles, schema.profile_roles, schema.roles
sessions, tags = schema.role_sessions, schema.ec2_instance_tags

_INSTANCE = Prepared(select(instances).where(instances.c.id == bindparam("id")))
# Concurrent first fetches queue here, so one instance gets one new session, not one per caller.
_LOCK = Prepared(select(instances.c.id).where(instances.c.id == bindparam("id")).with_for_update())
_SESSION = Prepared(
    select(sessions)
    .where(sessions.c.instance_id == bindparam("instance"), sessions.c.expiration > bindparam("now"))
    .order_by(sessions.c.expiration.desc())
    .limit(1)
)
_TAGS = Prepared(select(tags.c.key, tags.c.value).where(tags.c.instance_id == bindparam("id")).order_by(tags.c.key))
_KEY = Prepared(select(schema.server_secrets.c.value).where(schema.server_secrets.c.name == bindparam("name")))


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    headers: Mapping[str, str]


class NeedsSession:
    """An answer that needs a new role session, which a read transaction cannot make: asked again in a write one."""


NEEDS_SESSION = NeedsSession()
Answer = Reply | NeedsSession


class MetadataService:
    """Answers metadata requests for any instance, by id, from the store; the transports (app.py's path form and
    transport.py's listeners) only move bytes."""

    def __init__(self, settings: Settings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.refresh_window = min(REFRESH_WINDOW, timedelta(seconds=settings.credential_lifetime_seconds) / 2)
        self._key: bytes | None = None

    def load_key(self) -> bytes:
        """The token key: made by the first server to start on the database, then shared by all of them."""
        if self._key is None:
            with self.store.transaction(write=True) as tx:
                self._key = sql.server_secret(tx, KEY_NAME)
        return self._key

    def account_of(self, instance_id: str) -> str | None:
        """The account an instance belongs to, or None when there is no such instance."""
        with self.store.transaction(write=False) as tx:
            row = tx.execute(_INSTANCE, {"id": instance_id}).first()
        return None if row is None else str(row.account_id)

    def ended(self, instance_ids: list[str]) -> list[str]:
        """Those of the instances that are terminated or no longer exist (a reset, or forgotten an hour after
        termination): their metadata service will never answer again."""
        if not instance_ids:
            return []
        cutoff = self.clock() - timedelta(seconds=self.settings.state_transition_seconds)
        with self.store.transaction(write=False) as tx:
            found = list(
                tx.execute(
                    select(instances.c.id, instances.c.state, instances.c.state_since).where(
                        instances.c.id.in_(instance_ids)
                    )
                )
            )
        live = {row.id for row in found if INSTANCE_STATES.at(row.state, row.state_since, cutoff) != "terminated"}
        return [instance_id for instance_id in instance_ids if instance_id not in live]

    def _instance(self, tx: Tx, instance_id: str, now: datetime) -> SimpleNamespace | None:
        """The instance with what its metadata service knows of its role: its active association, that
        association's profile (if it still exists) and the profile's role, as IAM and EC2 changes have reached it
        (the propagation and association delays, store/journal.py)."""
        row = tx.execute(_INSTANCE, {"id": instance_id}).first()
        if row is None:
            return None
        view = journal.View(tx, now)
        association = view.one(associations, active_instance_id=instance_id)
        profile = view.one(profiles, id=association.profile_id) if association is not None else None
        link = view.one(profile_roles, profile_id=profile.id) if profile is not None else None
        role = view.one(roles, id=link.role_id) if link is not None else None
        return SimpleNamespace(
            **row._asdict(),
            association_id=association.id if association else None,
            profile_arn=association.profile_arn if association else None,
            profile_id=association.profile_id if association else None,
            associated_at=association.create_time if association else None,
            live_profile_id=profile.id if profile else None,
            role_id=role.id if role else None,
            role_name=role.name if role else None,
            role_path=role.path if role else None,
            trust_policy=role.trust_policy if role else None,
        )

    def handle(self, instance_id: str, method: str, path: str, headers: Mapping[str, str]) -> Reply | None:
        """The answer to one request (headers with lower-case names), or None when the instance cannot answer."""
        request = _Request(method.upper(), path, headers)
        now = self.clock()
        self.load_key()  # before any transaction: making the key needs a write transaction of its own
        with self.store.transaction(write=False) as tx:
            answer = self._answer(tx, instance_id, request, now, mint=False)
        if not isinstance(answer, NeedsSession):
            return answer
        with self.store.transaction(write=True) as tx:
            tx.execute(_LOCK, {"id": instance_id})
            answer = self._answer(tx, instance_id, request, now, mint=True)
        if isinstance(answer, NeedsSession):  # a write transaction mints what it needs
            raise RuntimeError("a write transaction asked for a session it could make")
        return answer

    def _answer(self, tx: Tx, instance_id: str, request: _Request, now: datetime, mint: bool) -> Answer | None:
        row = self._instance(tx, instance_id, now)
        cutoff = now - timedelta(seconds=self.settings.state_transition_seconds)
        if row is None or INSTANCE_STATES.at(row.state, row.state_since, cutoff) not in SERVED_STATES:
            return None
        if row.http_endpoint != "enabled":
            return error(403)  # "403 - Forbidden - The request is not allowed or the IMDS is turned off."
        if request.method == "PUT":
            return self._put_token(instance_id, request, now)
        if request.method not in ("GET", "HEAD") or request.path == TOKEN_PATH:
            return error(405)  # a token is only ever made by a PUT
        token = request.headers.get(TOKEN_HEADER)
        if token is not None:
            # An invalid or expired token is refused even where tokens are optional (IMDSv2 how it works).
            if not token_valid(self.load_key(), token, instance_id, now):
                return error(401)
        elif row.http_tokens == "required":
            return error(401)  # "you must send a signed token header with any instance metadata retrieval request"
        return self._route(tx, row, request.path, now, mint)

    def _put_token(self, instance_id: str, request: _Request, now: datetime) -> Reply:
        # Only the latest token path makes tokens: a PUT to a version path is refused with 403
        # (awsdocs/amazon-ec2-user-guide#182), as is one with X-Forwarded-For ("PUT requests that contain
        # X-Forwarded-For are rejected", IMDSv2 how it works).
        if request.path != TOKEN_PATH or "x-forwarded-for" in request.headers:
            return error(403)
        ttl = token_ttl(request.headers.get(TTL_HEADER))
        if ttl is None:
            return error(400)  # "400 - Missing or Invalid Parameters - The PUT request is not valid."
        token = make_token(self.load_key(), instance_id, now, ttl)
        return Reply(200, token.encode(), headers=(("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", str(ttl)),))

    def _route(self, tx: Tx, row: Row, path: str, now: datetime, mint: bool) -> Answer:
        parts = [part for part in path.split("/") if part]  # a trailing slash is optional, as on EC2
        if not parts:
            return listing(["latest"])
        if parts[0] != "latest":
            return error(404)  # dated versions (/2021-07-15/...) are not served
        head, rest = (parts[1], parts[2:]) if len(parts) > 1 else ("", [])
        if not head:
            return listing(["dynamic", "meta-data"])
        if head == "meta-data":
            return self._meta_data(tx, row, rest, now, mint)
        if head == "dynamic" and rest in ([], ["instance-identity"]):
            return listing(["instance-identity/"] if not rest else ["document"])
        if head == "dynamic" and rest == ["instance-identity", "document"]:
            return flat_json(_identity(row))
        return error(404)

    def _meta_data(self, tx: Tx, row: Row, rest: list[str], now: datetime, mint: bool) -> Answer:
        items = _items(row)
        if not rest:
            # Only the categories that exist: iam/ with a profile, tags/ when allowed (instance metadata categories).
            folders = ["placement/", *(["iam/"] if row.association_id else [])]
            folders += ["tags/"] if row.instance_metadata_tags == "enabled" else []
            return listing(sorted([*items, *folders]))
        head, rest = rest[0], rest[1:]
        if head in items and not rest:
            return text(items[head])
        if head == "placement":
            placement = {"availability-zone": row.availability_zone, "region": row.availability_zone[:-1]}
            if not rest:
                return listing(sorted(placement))
            return text(placement[rest[0]]) if len(rest) == 1 and rest[0] in placement else error(404)
        if head == "iam" and row.association_id is not None:
            return self._iam(tx, row, rest, now, mint)
        if head == "tags" and row.instance_metadata_tags == "enabled":
            return _tags(tx, row, rest)
        return error(404)

    def _iam(self, tx: Tx, row: Row, rest: list[str], now: datetime, mint: bool) -> Answer:
        role = row.role_name if row.live_profile_id is not None else None
        if not rest:
            return listing(["info", *(["security-credentials/"] if role else [])])
        if rest == ["info"]:
            return flat_json(_info(row, now))
        if rest[0] != "security-credentials" or role is None or len(rest) > 2:
            return error(404)
        if len(rest) == 1:
            return text(role)
        if rest[1] != role:
            return error(404)
        if not ec2_may_assume(row.trust_policy):
            # As EC2 words it (IAM User Guide, troubleshooting EC2 roles; observed responses).
            message = f"EC2 cannot assume the role {role}.  Please see documentation at {DOC_URL}."
            return flat_json({"Code": "AssumeRoleUnauthorizedAccess", "Message": message, "LastUpdated": _iso(now)})
        session = self._session(tx, row, now, mint)
        return NEEDS_SESSION if session is None else _credentials_out(session)

    def _session(self, tx: Tx, row: Row, now: datetime, mint: bool) -> Row | None:
        """The instance's current session, re-served until it comes within the refresh window; a new one when it
        has, or when the instance's association or its profile's role has changed since it was made (None: one is
        needed and `mint` is off)."""
        found = tx.execute(_SESSION, {"instance": row.id, "now": now}).first()
        if (
            found is not None
            and found.role_id == row.role_id
            and found.association_id == row.association_id
            and found.expiration - now > self.refresh_window
        ):
            return found
        if not mint:
            return None
        return role_sessions.mint(
            tx,
            account_id=row.account_id,
            role=SimpleNamespace(id=row.role_id, name=row.role_name, path=row.role_path),
            session_name=row.id,  # GetCallerIdentity shows assumed-role/ROLE/i-…
            source="ec2",
            now=now,
            duration_seconds=self.settings.credential_lifetime_seconds,
            instance_id=row.id,
            association_id=row.association_id,
        )


def _items(row: Row) -> dict[str, str]:
    """The plain values under meta-data/ (instance metadata categories)."""
    return {
        "ami-id": row.image_id,
        "ami-launch-index": str(row.launch_index),
        "hostname": row.private_dns_name,
        "instance-id": row.id,
        "instance-life-cycle": "on-demand",
        "instance-type": row.instance_type,
        "local-hostname": row.private_dns_name,
        "local-ipv4": row.private_ip,
        "mac": _mac(row.id),
        "reservation-id": row.reservation_id,
    }


def _mac(instance_id: str) -> str:
    """A stable, locally administered unicast MAC for the instance's one network interface."""
    digest = hashlib.sha256(instance_id.encode()).digest()[:5]
    return ":".join(["0e", *(f"{byte:02x}" for byte in digest)])


def _info(row: Row, now: datetime) -> dict[str, str | None]:
    if row.live_profile_id is None:
        # The profile was deleted (or deleted and made again: a new id). Observed on EC2, June 2024.
        message = f"Instance Profile with Id {row.profile_id} cannot be found.  Please see documentation at {DOC_URL}."
        return {"Code": "InstanceProfileNotFound", "Message": message, "LastUpdated": _iso(now)}
    found = {"InstanceProfileArn": row.profile_arn, "InstanceProfileId": row.profile_id}
    if row.role_id is None:
        # 'iam/info indicates a success but indicates "Message":"Instance Profile does not contain a role..."'
        # (IAM User Guide, troubleshooting EC2 roles).
        message = "Instance Profile does not contain a role."
        return {"Code": "Success", "Message": message, "LastUpdated": _iso(row.associated_at), **found}
    return {"Code": "Success", "LastUpdated": _iso(row.associated_at), **found}


def _credentials_out(session: Row) -> Reply:
    return flat_json(
        {
            "Code": "Success",
            "LastUpdated": _iso(session.create_date),
            "Type": "AWS-HMAC",
            "AccessKeyId": session.access_key_id,
            "SecretAccessKey": session.secret,
            "Token": session.token,
            "Expiration": _iso(session.expiration),
        }
    )


def _identity(row: Row) -> dict[str, str | None]:
    """The instance identity document, fields in the order EC2 sends them (version 2017-09-30)."""
    return {
        "accountId": row.account_id,
        "architecture": row.architecture,
        "availabilityZone": row.availability_zone,
        "billingProducts": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": None,
        "imageId": row.image_id,
        "instanceId": row.id,
        "instanceType": row.instance_type,
        "kernelId": None,
        "pendingTime": _iso(row.launch_time),
        "privateIp": row.private_ip,
        "ramdiskId": None,
        "region": row.availability_zone[:-1],
        "version": "2017-09-30",
    }


def _tags(tx: Tx, row: Row, rest: list[str]) -> Reply:
    if not rest:
        return listing(["instance"])
    if rest[0] != "instance" or len(rest) > 2:
        return error(404)
    found = {tag.key: tag.value for tag in tx.execute(_TAGS, {"id": row.id})}
    if len(rest) == 1:
        return listing(list(found)) if found else error(404)
    value = found.get(rest[1])
    return text(value) if value is not None else error(404)
