"""The protocol round trips against another botocore than the pinned one: the newest on PyPI by default.

Not part of the default run (`-m 'not latest_models'` in pyproject.toml): a new service model is a known failure to
look at before bumping constraints.txt, not a newcomer's red build. Run it with `python -m pytest -m latest_models`
(`ROLEPORT_BOTOCORE_VERSION=1.43.11` tries one version, e.g. the lower bound in pyproject.toml).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROUND_TRIPS = Path(__file__).with_name("test_protocol_roundtrip.py")


@pytest.mark.latest_models
def test_round_trips_with_other_botocore(tmp_path: Path) -> None:
    version = os.environ.get("ROLEPORT_BOTOCORE_VERSION", "")
    requirement = f"botocore=={version}" if version else "botocore"
    site = tmp_path / "site"
    # --isolated: no constraints or pins from the user's pip configuration may hold the version back.
    install = [sys.executable, "-m", "pip", "install", "--isolated", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*install, "--upgrade", requirement], check=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    probe = [sys.executable, "-c", "import botocore; print(botocore.__version__)"]
    installed = subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout.strip()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", str(ROUND_TRIPS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    tail = "\n".join(run.stdout.splitlines()[-30:])
    assert run.returncode == 0, f"round trips against botocore {installed} failed:\n{tail}"
