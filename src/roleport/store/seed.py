"""AWS's managed policies, shipped with roleport as a data file, loaded into the store at start and after a reset."""

from __future__ import annotations

import json
from datetime import datetime
from importlib import resources

from sqlalchemy import select

from roleport.store import counters, schema
from roleport.store.db import Tx

policies = schema.policies
versions = schema.policy_versions

AWS_ACCOUNT = "aws"  # the account part of arn:aws:iam::aws:policy/...


def seed_aws_managed_policies(tx: Tx) -> int:
    """Load AWS's managed policies shipped with roleport into the store; those already there are left alone."""
    catalogue = json.loads(resources.files("roleport.data").joinpath("aws_managed_policies.json").read_text())
    known = set(tx.execute(select(policies.c.arn).where(policies.c.account_id == AWS_ACCOUNT)).scalars())
    added = 0
    for entry in catalogue:
        if entry["Arn"] in known:
            continue
        number = int(entry["DefaultVersionId"].lstrip("v"))
        created = datetime.fromisoformat(entry["CreateDate"].replace("Z", "+00:00"))
        updated = datetime.fromisoformat(entry["UpdateDate"].replace("Z", "+00:00"))
        tx.execute(
            policies.insert().values(
                id=entry["PolicyId"],
                account_id=AWS_ACCOUNT,
                arn=entry["Arn"],
                name=entry["PolicyName"],
                name_key=entry["PolicyName"].lower(),
                path=entry["Path"],
                description=entry.get("Description"),
                create_date=created,
                update_date=updated,
                default_version_id=entry["DefaultVersionId"],
                next_version=number + 1,
                is_attachable=True,
            )
        )
        tx.execute(
            versions.insert().values(
                policy_id=entry["PolicyId"],
                version_id=entry["DefaultVersionId"],
                version_number=number,
                document=json.dumps(entry["Document"], indent=4),
                create_date=updated,
            )
        )
        added += 1
    return added


def seed(tx: Tx, account_id: str) -> None:
    """What a new or reset store holds before any call: AWS's managed policies and the account's entity counters."""
    seed_aws_managed_policies(tx)
    counters.ensure_counters(tx, account_id)
