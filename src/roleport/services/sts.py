"""STS: who is calling."""

from __future__ import annotations

from typing import Any

from roleport.context import Ctx, Params
from roleport.services.registry import operation


@operation("sts", "GetCallerIdentity")
def get_caller_identity(ctx: Ctx, p: Params) -> dict[str, Any]:
    # GetCallerIdentity needs no permission and cannot be denied (STS API reference).
    principal = ctx.principal
    return {"UserId": principal.user_id, "Account": principal.account_id, "Arn": principal.arn}
