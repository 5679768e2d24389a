"""The IAM generation: a counter that moves whenever IAM's state changes, so values derived from IAM (policy sets,
authorization decisions, resource tags) can be kept keyed by it and never go stale.

A write transaction notices on its own that it changed an IAM table (Tx.execute) and moves the counter as it
commits; from its first IAM change on it keeps what it derives to itself, since it may still roll back. Nothing
outside the store bumps the counter by hand. Readers key what they derive by auth/identity.Version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Delete, Insert, Update, update

from roleport.store import schema
from roleport.store.statements import Prepared

# The tables IAM's state is made of. Every table is in this set or in OTHER_TABLES (tests/unit/test_generation.py),
# so a new table cannot be added without deciding whether changing it must retire what was derived from IAM.
IAM_TABLES = frozenset(
    table.name
    for table in (
        schema.roles,
        schema.role_tags,
        schema.role_inline_policies,
        schema.role_policy_attachments,
        schema.instance_profiles,
        schema.profile_tags,
        schema.profile_roles,
        schema.policies,
        schema.policy_versions,
        schema.policy_tags,
        schema.users,
        schema.user_tags,
        schema.user_inline_policies,
        schema.user_policy_attachments,
        schema.access_keys,
    )
)
OTHER_TABLES = frozenset(
    table.name
    for table in (
        schema.schema_info,
        schema.ec2_reservations,
        schema.ec2_instances,
        schema.ec2_instance_tags,
        schema.ec2_associations,
        schema.role_sessions,  # a session's own policy travels in its principal, not in derived IAM state
        schema.server_secrets,
        schema.console_sessions,
        schema.counters,  # quota counters and the generation itself
        schema.change_journal,  # its flush moves the generation explicitly (journal.flush)
    )
)

BUMP = Prepared(
    update(schema.counters).where(schema.counters.c.name == "iam").values(value=schema.counters.c.value + 1)
)


def changes_iam(statement: Any) -> bool:
    """Whether a statement (SQLAlchemy Core or Prepared) writes a table of IAM's."""
    core = getattr(statement, "statement", statement)
    return isinstance(core, Insert | Update | Delete) and core.table.name in IAM_TABLES
