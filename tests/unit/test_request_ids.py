"""Request ids: UUID version 4 strings, never repeated, in this process or a forked one."""

from __future__ import annotations

import subprocess
import sys
import uuid

from roleport.pipeline import _request_id


def test_request_ids_are_distinct_uuid4_strings() -> None:
    ids = [_request_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:50]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # Neighbours differ throughout the counted group, not in its last digit alone.
    assert len({text[-12:-8] for text in ids[:50]}) > 40


_FORK_AND_COMPARE = """
import os
from roleport.pipeline import _request_id
reader, writer = os.pipe()
child = os.fork()
if child == 0:
    os.write(writer, _request_id().encode())
    os._exit(0)
os.close(writer)
os.waitpid(child, 0)
print(os.read(reader, 100).decode(), _request_id())
"""


def test_a_forked_process_draws_its_own_ids() -> None:
    # In a fresh, single-threaded interpreter: forking this multi-threaded test process is deprecated.
    done = subprocess.run([sys.executable, "-c", _FORK_AND_COMPARE], capture_output=True, text=True, check=True)
    theirs, mine = done.stdout.split()
    assert uuid.UUID(theirs).version == 4 and uuid.UUID(mine).version == 4 and theirs[:24] != mine[:24]
