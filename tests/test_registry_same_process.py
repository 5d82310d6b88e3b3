"""Two handles on one registry file in one process (``Asset(...)`` beside
``load_model(...)``, or ``check`` beside a flow's client) while other processes write.

Opening a second handle used to read the file's first bytes with open()/close(); POSIX then
drops every lock the process holds on the file, SQLite's included, so another process's
last close checkpointed and reset the WAL under the first handle, whose reads then failed as
"database disk image is malformed" or returned another table's rows."""

from __future__ import annotations

import subprocess
import sys

from flowpolicy.registry.base import Scope
from flowpolicy.registry.sqlite import SQLiteRegistry

SCOPE = Scope("p", "dev", "model", "m")

WRITER = """
import sys
from flowpolicy.registry.base import EntityRef, Scope
from flowpolicy.registry.sqlite import SQLiteRegistry
registry = SQLiteRegistry(sys.argv[1])
scope = Scope("p", "dev", "model", "m")
for _ in range(40):
    registry.register(scope, kind="artifact", created_by=EntityRef("user", "w"),
                      annotations={"padding": "x" * 3000})
    registry.set_alias(scope, "a", "latest", by=EntityRef("user", "w"))
registry.close()
"""


def write_in_another_process(path) -> None:
    subprocess.run([sys.executable, "-c", WRITER, str(path)], check=True, timeout=120)


def test_a_second_handle_in_one_process_keeps_the_first_ones_reads_right(tmp_path):
    path = tmp_path / "registry.db"
    write_in_another_process(path)
    first = SQLiteRegistry(path, read_only=True)
    first.resolve(SCOPE)
    second = SQLiteRegistry(path)
    second.resolve(SCOPE)
    for round_number in range(2, 5):
        write_in_another_process(path)  # its close is the last one: checkpoint, WAL reset
        expected = 40 * round_number
        for handle in (first, second):
            assert handle.resolve(SCOPE).version == expected
            assert handle.get_alias(SCOPE, "a") == expected
            assert len(handle.alias_history(SCOPE, "a")) == expected
