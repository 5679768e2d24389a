"""The README's examples, run as a newcomer runs them: the shell blocks of its quickstarts, in a shell, against a
real `roleport serve` started by the block itself, each section in a fresh folder and network namespace (so the
README's own port, 7665, is free whatever else runs). A full-line comment right after a command is that command's
output: it must appear in what the command printed, with `…` (or `...`) standing for anything and white space
ignored. A command must succeed unless its comment shows a refusal (an AWS error, or `roleport: …`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTIONS = ("Quickstart with the `aws` CLI", "EC2 quickstart", "Code on an instance")
_WILDCARD = re.compile(r"…|\.\.\.")


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)
    python: bool = False


def sections() -> dict[str, list[tuple[str, str]]]:
    """Fenced blocks (language, text) under each `## ` heading."""
    found: dict[str, list[tuple[str, str]]] = {}
    heading, language, lines = "", None, []
    for line in README.read_text().splitlines():
        if language is None and line.startswith("## "):
            heading = line[3:].strip()
        elif language is None and line.startswith("```"):
            language, lines = line[3:].strip(), []
        elif language is not None and line.startswith("```"):
            found.setdefault(heading, []).append((language, "\n".join(lines)))
            language = None
        elif language is not None:
            lines.append(line)
    return found


def steps(blocks: list[tuple[str, str]]) -> list[Step]:
    """Commands (continuation lines and `for … done` joined) with the comment lines that follow each."""
    result: list[Step] = []
    for language, text in blocks:
        if language == "python":
            result.append(Step(text, python=True))
            continue
        if language != "sh":
            continue
        pending: list[str] = []
        depth = 0
        attached = False  # whether a comment line now is output of the command just before it
        for line in text.splitlines():
            stripped = line.strip()
            if not pending and stripped.startswith("# "):
                if attached:
                    result[-1].expected.append(stripped[2:])
                continue
            if not pending and not stripped:
                attached = False  # a blank line ends a command's output
                continue
            pending.append(line)
            depth += len(re.findall(r"\b(?:do|then)\b", stripped)) - len(re.findall(r"\b(?:done|fi)\b", stripped))
            if not stripped.endswith("\\") and depth == 0:
                result.append(Step("\n".join(pending)))
                pending, attached = [], True
    return result


def script(all_steps: list[Step], folder: Path) -> str:
    """One shell runs every step, so variables and `eval "$(roleport env)"` carry over from step to step."""
    lines = ["cd " + str(folder), "ip link set lo up"]
    for number, step in enumerate(all_steps):
        out, code = folder / f"out{number}", folder / f"rc{number}"
        command = step.command
        if step.python:
            lines.append(f"{{ python - <<'README_PYTHON'\n{command}\nREADME_PYTHON\n}} > {out} 2>&1; echo $? > {code}")
        elif command.lstrip().startswith("roleport serve"):
            # The server runs in the background (the README's "one shell" or `&`); its first line is its output.
            args = command.split("#", 1)[0].strip().removesuffix("&").strip()
            lines.append(f"{args} > serve.out 2> serve.err &")
            lines.append("for _ in $(seq 600); do [ -s serve.out ] && break; sleep 0.05; done")
            lines.append(f"head -n 1 serve.out > {out}; echo 0 > {code}")
        else:
            lines.append(f"{{ {command}\n}} > {out} 2>&1; echo $? > {code}")
    lines.append("kill -INT $(jobs -p) 2>/dev/null; wait")
    return "\n".join(lines) + "\n"


def matches(expected: list[str], output: str) -> bool:
    squeezed = "".join(output.split())
    position = 0
    for fragment in _WILDCARD.split("".join("".join(expected).split())):
        found = squeezed.find(fragment, position)
        if found < 0:
            return False
        position = found + len(fragment)
    return True


def _environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ROLEPORT_"))}
    bin_dir = str(Path(sys.executable).parent)
    env.update(HOME=str(folder), PATH=os.pathsep.join([bin_dir, env.get("PATH", "")]), NO_PROXY="*")
    return env


def test_readme_sections_exist() -> None:
    found = sections()
    for heading in SECTIONS:
        assert any(language == "sh" for language, _ in found.get(heading, [])), heading


def test_ci_runs_the_readme_test_command() -> None:
    command = sections()["The two commands"][1][1].strip()
    assert command.startswith("pip install")
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.parametrize("heading", SECTIONS)
def test_readme_examples_run_as_written(heading: str, tmp_path: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare and ip (util-linux, iproute2) run each section on its own loopback")
    blocks = sections()[heading]
    all_steps = steps(blocks)
    if not any(step.command.lstrip().startswith("roleport serve") for step in all_steps):
        all_steps.insert(0, Step("roleport serve &"))  # a section that goes on from a running server
    (tmp_path / "readme.sh").write_text(script(all_steps, tmp_path))
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no network namespace for the README's port: {probe.stderr.decode().strip()}")
    run = subprocess.run(
        ["unshare", "--net", "bash", str(tmp_path / "readme.sh")],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    for number, step in enumerate(all_steps):
        output = (tmp_path / f"out{number}").read_text()
        code = int((tmp_path / f"rc{number}").read_text())
        shown = f"README {heading!r}, step {number}:\n{step.command}\n--- printed (exit {code}):\n{output}"
        if step.expected:
            assert matches(step.expected, output), shown + "\n--- expected:\n" + "\n".join(step.expected)
        refused = any("An error occurred" in line or line.startswith("roleport: ") for line in step.expected)
        assert (code != 0) == refused, shown
