"""EC2's passing states (pending, associating, ...) and the stable state each settles into after the
configured delay; one rule read by output in Python and by filters in SQL. The metadata service reads it too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, literal, or_
from sqlalchemy.sql.elements import ColumnElement

from roleport.context import Ctx
from roleport.store import schema

instances = schema.ec2_instances
associations = schema.ec2_associations

# DescribeInstances reference: "Recently terminated instances might appear in the returned results. This interval is
# usually less than one hour." roleport shows them for the full hour, then forgets them.
TERMINATED_VISIBLE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Passing states and the stable state each settles into once `delay` has passed since it was entered.

    One rule, two readers: `at` for output in Python, `sql` for filters and paging in SQL, so that what a filter
    selects is exactly what the output shows."""

    settles: Mapping[str, str]

    def at(self, state: str, since: datetime, cutoff: datetime) -> str:
        """The state as seen at the instant whose settle cutoff (now - delay) is `cutoff`."""
        settled = self.settles.get(state)
        return settled if settled is not None and since <= cutoff else state

    def sql(self, state: Any, since: Any, cutoff: Any) -> ColumnElement[str]:
        whens = [(and_(state == passing, since <= cutoff), literal(stable)) for passing, stable in self.settles.items()]
        return case(*whens, else_=state)


INSTANCE_STATES = Lifecycle({"pending": "running", "stopping": "stopped", "shutting-down": "terminated"})
ASSOCIATION_STATES = Lifecycle({"associating": "associated", "disassociating": "disassociated"})
METADATA_STATES = Lifecycle({"pending": "applied"})  # InstanceMetadataOptionsResponse.State

# InstanceState.Code: the low byte (EC2 API reference, InstanceState).
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
STATE_NAMES = {str(code): name for name, code in STATE_CODES.items()}


def cutoff(ctx: Ctx) -> datetime:
    """Passing states entered at or before this instant have settled."""
    return ctx.now - timedelta(seconds=ctx.settings.state_transition_seconds)


def hidden_before(ctx: Ctx) -> datetime:
    """Instances that started shutting down at or before this instant have been terminated for an hour: gone."""
    return cutoff(ctx) - TERMINATED_VISIBLE


def instance_visible_sql(hidden: Any) -> ColumnElement[bool]:
    return or_(instances.c.state != "shutting-down", instances.c.state_since > hidden)


def purge_gone(ctx: Ctx) -> None:
    """Forget instances terminated, and associations disassociated, over an hour ago: no call can see them any more,
    and keeping them would make every scan over the live ones longer."""
    hidden = hidden_before(ctx)
    ctx.tx.execute(delete(instances).where(instances.c.state == "shutting-down", instances.c.state_since <= hidden))
    gone = and_(associations.c.state == "disassociating", associations.c.state_since <= hidden)
    ctx.tx.execute(delete(associations).where(gone))


def state_out(name: str) -> dict[str, Any]:
    return {"Code": STATE_CODES[name], "Name": name}
