"""`roleport serve` with the InstanceProfilesPerAccount quota raised, for the benchmark only.

roleport enforces IAM's default quota of 1,000 instance profiles per account and its CLI has no flag to change it,
while the benchmark creates tens of thousands. This runs the very same `roleport serve` command (same app, same uvicorn
settings) after raising that one quota in the Settings the command builds. Run: python bench/roleport_launcher.py
[roleport serve options...]
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

QUOTA = 10_000_000


def main() -> None:
    from roleport import cli

    build_settings = cli._settings  # the function `serve` calls to turn its flags into Settings

    def settings_with_quota(**options: Any) -> Any:
        settings = build_settings(**options)
        quotas = dataclasses.replace(settings.quotas, instance_profiles_per_account=QUOTA)
        return dataclasses.replace(settings, quotas=quotas)

    cli._settings = settings_with_quota
    cli.main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    main()
