"""The tables, and the invariants that live in them: unique names, one role per instance profile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

SCHEMA_VERSION = 1


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(value: datetime) -> int:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


class Timestamp(TypeDecorator[datetime]):
    """An instant as integer microseconds since the epoch: the same on every backend, exact, and cheap to read
    without a driver-specific date type. Read back as an aware UTC datetime."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return to_micros(value) if value is not None else None

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return from_micros(int(value)) if value is not None else None


metadata = MetaData()

schema_info = Table(
    "schema_info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

# Names are unique per account regardless of case (IAM quotas page: "you can't create ADMINS and admins"), so each
# named entity keeps its lower-cased name in name_key under a unique index; list order follows the same key.
roles = Table(
    "roles",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("name", String(64), nullable=False),
    Column("name_key", String(64), nullable=False),
    Column("path", String(512), nullable=False),
    Column("create_date", Timestamp, nullable=False),
    Column("trust_policy", Text, nullable=False),
    Column("description", Text),
    Column("max_session_duration", Integer, nullable=False),
    Column("permissions_boundary", String(2048)),
    UniqueConstraint("account_id", "name_key", name="ux_roles_name"),
)

instance_profiles = Table(
    "instance_profiles",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("name", String(128), nullable=False),
    Column("name_key", String(128), nullable=False),
    Column("path", String(512), nullable=False),
    Column("create_date", Timestamp, nullable=False),
    UniqueConstraint("account_id", "name_key", name="ux_instance_profiles_name"),
)

# The primary key on profile_id alone is AWS's "one role per instance profile" quota, held by the database.
profile_roles = Table(
    "profile_roles",
    metadata,
    Column("profile_id", String(32), ForeignKey("instance_profiles.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", String(32), ForeignKey("roles.id"), nullable=False),
    Index("ix_profile_roles_role", "role_id", "profile_id"),
)


def _tags_table(name: str, owner: str) -> Table:
    # IAM treats tag keys case-insensitively (a second "Env" replaces "env"), so key_lower is the key column.
    return Table(
        name,
        metadata,
        Column("owner_id", String(32), ForeignKey(f"{owner}.id", ondelete="CASCADE"), nullable=False),
        Column("key_lower", String(128), nullable=False),
        Column("key", String(128), nullable=False),
        Column("value", String(256), nullable=False),
        PrimaryKeyConstraint("owner_id", "key_lower"),
    )


role_tags = _tags_table("role_tags", "roles")
profile_tags = _tags_table("instance_profile_tags", "instance_profiles")


def _inline_policies_table(owner: str) -> Table:
    """A principal's inline policies: `role` or `user`, keyed by the owner and the policy name."""
    return Table(
        f"{owner}_inline_policies",
        metadata,
        Column(f"{owner}_id", String(32), ForeignKey(f"{owner}s.id", ondelete="CASCADE"), nullable=False),
        Column("name", String(128), nullable=False),
        Column("document", Text, nullable=False),
        PrimaryKeyConstraint(f"{owner}_id", "name"),
    )


def _attachments_table(owner: str) -> Table:
    """The managed policies attached to a principal, indexed by policy too (AttachmentCount, DeletePolicy)."""
    return Table(
        f"{owner}_policy_attachments",
        metadata,
        Column(f"{owner}_id", String(32), ForeignKey(f"{owner}s.id", ondelete="CASCADE"), nullable=False),
        Column("policy_id", String(32), ForeignKey("policies.id"), nullable=False),
        PrimaryKeyConstraint(f"{owner}_id", "policy_id"),
        Index(f"ix_{owner}_policy_attachments_policy", "policy_id", f"{owner}_id"),
    )


role_inline_policies = _inline_policies_table("role")

# AWS managed policies live here too, under account "aws", so one table answers GetPolicy and ListPolicies.
policies = Table(
    "policies",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("arn", String(2048), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("name_key", String(128), nullable=False),
    Column("path", String(512), nullable=False),
    Column("description", Text),
    Column("create_date", Timestamp, nullable=False),
    Column("update_date", Timestamp, nullable=False),
    Column("default_version_id", String(16), nullable=False),
    Column("next_version", Integer, nullable=False),
    Column("is_attachable", Boolean, nullable=False),
    UniqueConstraint("account_id", "name_key", name="ux_policies_name"),
    Index("ix_policies_list", "name_key", "arn"),
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("policy_id", String(32), ForeignKey("policies.id", ondelete="CASCADE"), nullable=False),
    Column("version_id", String(16), nullable=False),
    Column("version_number", Integer, nullable=False),
    Column("document", Text, nullable=False),
    Column("create_date", Timestamp, nullable=False),
    PrimaryKeyConstraint("policy_id", "version_number"),
)

policy_tags = _tags_table("policy_tags", "policies")

role_policy_attachments = _attachments_table("role")


# ---------------------------------------------------------------------------------------------- EC2
# Passing states (pending, stopping, associating...) are stored with the instant they were entered; readers derive the
# stable state from (state, since, now, delay) in Python and in SQL (services/ec2_lifecycle.py), so nothing has to wake
# up to move them on.

# A reservation is one RunInstances call. The unique client token per account is RunInstances' idempotency (EC2
# idempotency guide); NULL tokens never collide.
ec2_reservations = Table(
    "ec2_reservations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("client_token", String(64)),
    Column("request_digest", String(64), nullable=False),  # the launch parameters, for IdempotentParameterMismatch
    Column("create_time", Timestamp, nullable=False),
    UniqueConstraint("account_id", "client_token", name="ux_ec2_reservations_client_token"),
)

# seq is the launch order: the key DescribeInstances pages by, so a page is an index range scan at any depth.
ec2_instances = Table(
    "ec2_instances",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("account_id", String(12), nullable=False),
    Column("reservation_id", String(32), ForeignKey("ec2_reservations.id"), nullable=False),
    Column("launch_index", Integer, nullable=False),
    Column("client_token", String(64)),
    Column("image_id", String(32), nullable=False),
    Column("instance_type", String(32), nullable=False),
    Column("architecture", String(16), nullable=False),
    Column("availability_zone", String(32), nullable=False),
    Column("private_ip", String(15), nullable=False),
    Column("private_dns_name", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_since", Timestamp, nullable=False),
    Column("state_reason", String(64)),  # StateReason.Code of a user-initiated stop or terminate
    Column("launch_time", Timestamp, nullable=False),
    Column("first_launch_time", Timestamp, nullable=False),
    Column("http_tokens", String(16), nullable=False),
    Column("http_endpoint", String(16), nullable=False),
    Column("http_put_response_hop_limit", Integer, nullable=False),
    Column("instance_metadata_tags", String(16), nullable=False),
    Column("http_protocol_ipv6", String(16), nullable=False),
    Column("metadata_state", String(16), nullable=False),
    Column("metadata_since", Timestamp, nullable=False),
    Index("ix_ec2_instances_account", "account_id", "seq"),
    Index("ix_ec2_instances_reservation", "reservation_id", "launch_index"),
    Index("ix_ec2_instances_state", "state", "state_since"),
)

# EC2 tag keys are case-sensitive, unlike IAM's, so the key itself is the key column.
ec2_instance_tags = Table(
    "ec2_instance_tags",
    metadata,
    Column("instance_id", String(32), ForeignKey("ec2_instances.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(128), nullable=False),
    Column("value", String(256), nullable=False),
    PrimaryKeyConstraint("instance_id", "key"),
    Index("ix_ec2_instance_tags_key", "key", "value"),
)

# An association keeps the profile's ARN and id rather than a foreign key: AWS lets DeleteInstanceProfile remove a
# profile that instances still use, and they keep showing it. active_instance_id is set only while the association is
# associating or associated, so its unique constraint is "one active profile per instance" (AssociateIamInstanceProfile
# reference), held by the database for concurrent callers; NULLs never collide on SQLite or PostgreSQL.
ec2_associations = Table(
    "ec2_iam_instance_profile_associations",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("account_id", String(12), nullable=False),
    Column("instance_id", String(32), ForeignKey("ec2_instances.id", ondelete="CASCADE"), nullable=False),
    Column("active_instance_id", String(32)),
    Column("profile_arn", String(2048), nullable=False),
    Column("profile_id", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_since", Timestamp, nullable=False),
    Column("create_time", Timestamp, nullable=False),
    UniqueConstraint("active_instance_id", name="ux_ec2_associations_active_instance"),
    Index("ix_ec2_associations_account", "account_id", "seq"),
    Index("ix_ec2_associations_instance", "instance_id"),
    Index("ix_ec2_associations_state", "state", "state_since"),
)

# --- Principals and credentials (issue 4) ---------------------------------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("name", String(64), nullable=False),
    Column("name_key", String(64), nullable=False),
    Column("path", String(512), nullable=False),
    Column("create_date", Timestamp, nullable=False),
    Column("permissions_boundary", String(2048)),
    UniqueConstraint("account_id", "name_key", name="ux_users_name"),
)

user_tags = _tags_table("user_tags", "users")

user_inline_policies = _inline_policies_table("user")

user_policy_attachments = _attachments_table("user")

# Long-term keys of IAM users (AKIA…). No cascade from users: DeleteUser is refused while keys exist (DeleteUser
# reference), and the foreign key keeps it so.
access_keys = Table(
    "access_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("secret", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("create_date", Timestamp, nullable=False),
    Column("last_used", Timestamp),
    Index("ix_access_keys_user", "user_id", "create_date"),
)

# Temporary credentials (ASIA…) from AssumeRole and from instance metadata. The token is kept whole because the
# metadata service hands the same credentials out again until it rotates them (and the secret must be kept whole to
# verify signatures anyway). role_id has no foreign key: a session outlives its role's deletion until it expires.
role_sessions = Table(
    "role_sessions",
    metadata,
    Column("access_key_id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("secret", String(64), nullable=False),
    Column("token", Text, nullable=False),
    Column("role_id", String(32), nullable=False),
    Column("role_arn", String(2048), nullable=False),
    Column("session_name", String(64), nullable=False),
    Column("source", String(16), nullable=False),  # "sts" (AssumeRole) or "ec2" (an instance's metadata service)
    Column("instance_id", String(32)),
    Column("association_id", String(32)),
    Column("session_policy", Text),
    Column("create_date", Timestamp, nullable=False),
    Column("expiration", Timestamp, nullable=False),
    Index("ix_role_sessions_instance", "instance_id", "expiration"),
    Index("ix_role_sessions_role", "role_id"),
)

# Keys the server signs with (IMDSv2 session tokens), shared by every server process on the database.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

# Console sign-in sessions (console/session.py), by the random id their signed cookie carries. Kept in the store so
# that signing out ends a session everywhere (a copied cookie stops working) and every server process on the database,
# before and after a restart, knows the same sessions.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("access_key_id", String(128), nullable=False),
    Column("expires", Timestamp, nullable=False),
    Index("ix_console_sessions_expires", "expires"),
)

# Bumped by every IAM change, in the change's own transaction: what was derived from IAM state (a principal's
# parsed policies, a resource's path and tags) stays valid while the counter stands still, so authorization need not
# read it again on every call.
counters = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Integer, nullable=False),
)

# IAM changes as the rest of AWS sees them (eventual consistency, store/journal.py). While a propagation delay is set,
# each write to a table other services read keeps the row's before-image here, with the instant the change becomes
# visible to them; readers outside IAM undo the changes not yet visible. Entries of a stream become visible in seq
# order, so what is visible is always a prefix of the changes made.
change_journal = Table(
    "change_journal",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("stream", String(16), nullable=False),  # "iam", or "association" (EC2 associations, as IMDS sees them)
    Column("table_name", String(64), nullable=False),
    Column("row_key", Text, nullable=False),  # the row's primary key, as a JSON list
    Column("before", Text),  # the row before the change, as a JSON object; NULL when the change created it
    Column("visible_at", Timestamp, nullable=False),
    Index("ix_change_journal_visible", "stream", "visible_at"),
    Index("ix_change_journal_row", "table_name", "row_key", "seq"),
)
