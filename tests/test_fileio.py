"""Atomic output: generated flows and ``lint -o`` reports are written to a temporary file and
renamed, so readers never see a partial file; modes, links and old files survive failures.

The reader test runs real processes: readers re-read the output files as fast as they can
while another process runs ``flowpolicy compile`` / ``flowpolicy lint -o`` over and over,
and every read must be one complete version of the file."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowpolicy.compile import compile_policy, write_outputs
from flowpolicy.errors import OutputError
from flowpolicy.fileio import atomic_write, atomic_write_all, atomic_writer, make_folder
from flowpolicy.policy.loader import load_policy

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = REPO_ROOT / "examples" / "fraud_detection" / "policies" / "fraud.yaml"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --- the helper ---------------------------------------------------------------------------


def test_new_file_gets_the_umask_mode_and_an_existing_one_keeps_its_mode(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("made by open()")  # the mode any new file gets under this umask
    atomic_write(tmp_path / "new.txt", "new\n")
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == stat.S_IMODE(
        plain.stat().st_mode)

    existing = tmp_path / "script.py"
    existing.write_text("old\n")
    existing.chmod(0o750)
    atomic_write(existing, "new\n")
    assert existing.read_text() == "new\n"
    assert stat.S_IMODE(existing.stat().st_mode) == 0o750
    assert _leftovers(tmp_path) == []


def test_text_is_utf8_with_unix_line_ends(tmp_path):
    atomic_write(tmp_path / "a.txt", "é\nline\r\n")
    assert (tmp_path / "a.txt").read_bytes() == "é\nline\r\n".encode()


def test_a_link_is_written_through(tmp_path):
    real = tmp_path / "real.sarif"
    real.write_text("old")
    link = tmp_path / "link.sarif"
    link.symlink_to(real)
    atomic_write(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_writer_keeps_the_old_file_until_it_finishes_and_on_failure(tmp_path):
    report = tmp_path / "report.json"
    report.write_text("old")
    with atomic_writer(report) as out:
        out.write("half")
        out.flush()
        assert report.read_text() == "old"  # a reader sees the old file meanwhile
        out.write(" and the rest")
    assert report.read_text() == "half and the rest"

    with pytest.raises(KeyError), atomic_writer(report) as out:
        out.write("broken")
        raise KeyError("the producer failed")
    assert report.read_text() == "half and the rest"
    assert _leftovers(tmp_path) == []


def test_batch_changes_nothing_when_one_file_cannot_be_written(tmp_path):
    (tmp_path / "a.py").write_text("old a")
    (tmp_path / "b.py").mkdir()  # a folder where a file should go
    with pytest.raises(OutputError, match=r"b\.py: it is a folder"):
        atomic_write_all({tmp_path / "a.py": "new a", tmp_path / "b.py": "new b"})
    assert (tmp_path / "a.py").read_text() == "old a"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("make", "target", "message"),
    [
        (None, "missing/x.sarif", "cannot write {t}: folder {d}/missing does not exist"),
        ("file", "file/x.sarif", "cannot write {t}: {d}/file is not a folder"),
        ("folder", "folder", "cannot write {t}: it is a folder"),
    ],
)
def test_unwritable_targets_are_output_errors(tmp_path, make, target, message):
    if make == "file":
        (tmp_path / "file").write_text("")
    elif make == "folder":
        (tmp_path / "folder").mkdir()
    path = tmp_path / target
    with pytest.raises(OutputError) as caught:
        atomic_write(path, "x")
    assert str(caught.value) == message.format(t=path, d=tmp_path)
    assert caught.value.exit_code == 2


def test_make_folder_refuses_files_in_the_way(tmp_path):
    (tmp_path / "file").write_text("keep")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        make_folder(tmp_path / "file", "--dir")
    with pytest.raises(OutputError, match=r"cannot be a folder: .*file is not a folder"):
        make_folder(tmp_path / "file" / "sub", "--dir")
    assert (tmp_path / "file").read_text() == "keep"
    assert make_folder(tmp_path / "new" / "deep").is_dir()


def test_compile_failure_leaves_every_generated_file_as_it_was(tmp_path):
    policy = load_policy(EXAMPLE_POLICY)
    out = tmp_path / "flows"
    write_outputs(policy, out)
    before = {p.name: p.read_text() for p in out.iterdir()}
    changed = load_policy(_variant(tmp_path, "0.85"))
    (out / "quality_gate.py").unlink()
    (out / "quality_gate.py").mkdir()  # one output cannot be replaced
    with pytest.raises(OutputError, match="quality_gate.py: it is a folder"):
        write_outputs(changed, out)
    for name, text in before.items():
        if name != "quality_gate.py":
            assert (out / name).read_text() == text
    assert _leftovers(out) == []


def _variant(folder: Path, threshold: str) -> Path:
    """The example policy with another gate threshold (so every file's policy hash moves)."""
    path = folder / f"fraud_{threshold}.yaml"
    path.write_text(EXAMPLE_POLICY.read_text().replace("min: 0.8", f"min: {threshold}"))
    return path


# --- readers in other processes -----------------------------------------------------------

_READER = textwrap.dedent("""
    import json, os, sys, time
    expected_file, ready, stop = sys.argv[1:4]
    with open(expected_file, encoding="utf-8") as handle:
        expected = {path: {v.encode() for v in versions}
                    for path, versions in json.load(handle).items()}
    reads, bad, seen = 0, [], {path: set() for path in expected}
    deadline = time.monotonic() + 120  # a bound on the loop, not a timing assertion
    while not os.path.exists(stop) and time.monotonic() < deadline and reads < 5_000_000:
        for path, versions in expected.items():
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                data = None
            reads += 1
            if data in versions:
                seen[path].add(data)
            elif len(bad) < 5:
                bad.append([path, None if data is None else len(data)])
        if reads <= len(expected):
            open(ready, "w").close()
    json.dump({"reads": reads, "bad": bad, "seen": {p: len(v) for p, v in seen.items()}},
              sys.stdout)
""")

_WRITER = textwrap.dedent("""
    import json, sys
    from flowpolicy.cli import main
    rounds, variants = int(sys.argv[1]), json.loads(sys.argv[2])
    for i in range(rounds):
        code = main(variants[i % len(variants)])
        if code not in (0, 1):
            sys.exit(f"round {i}: exit {code}")
""")


def _lint_variants(tmp_path: Path) -> tuple[list[list[str]], Path]:
    """Two source trees with different findings, linted into one SARIF report."""
    report = tmp_path / "out" / "lint.sarif"
    report.parent.mkdir()
    variants = []
    for name, count in (("few", 20), ("many", 400)):
        src = tmp_path / name
        src.mkdir()
        for index in range(count):
            (src / f"flow_{index}.py").write_text(
                f"self.prj.register_model('prod_model_{index}', 1)\n")
        variants.append(["lint", "--no-policy-names", "--format", "sarif", "-j", "1",
                         "-o", str(report), str(src)])
    return variants, report


@pytest.mark.parametrize("command", ["compile", "lint"])
def test_concurrent_readers_never_see_a_partial_file(tmp_path, monkeypatch, command):
    from flowpolicy.cli import main

    monkeypatch.chdir(tmp_path)  # lint looks for policies from here: none

    if command == "compile":
        out = tmp_path / "flows"
        variants = [["compile", str(_variant(tmp_path, t)), "-o", str(out)]
                    for t in ("0.8", "0.85")]
        policies = [load_policy(v[1]) for v in variants]
        expected = {str(out / name): [compile_policy(p)[name] for p in policies]
                    for name in compile_policy(policies[0])}
        rounds = 40
    else:
        variants, report = _lint_variants(tmp_path)
        out = report.parent
        versions = []
        for variant in variants:
            assert main(variant) == 1
            versions.append(report.read_text(encoding="utf-8"))
        expected = {str(report): versions}
        rounds = 30
    assert main(variants[0]) in (0, 1)  # the files exist before the readers start
    expected_file = tmp_path / "expected.json"
    expected_file.write_text(json.dumps(expected))

    stop = tmp_path / "stop"
    readers = [subprocess.Popen([sys.executable, "-c", _READER, str(expected_file),
                                 str(tmp_path / f"ready{i}"), str(stop)],
                                stdout=subprocess.PIPE, text=True) for i in range(2)]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline, "readers did not start"
            time.sleep(0.01)
        writer = subprocess.run(
            [sys.executable, "-c", _WRITER, str(rounds), json.dumps(variants)],
            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    finally:
        stop.touch()
        results = [json.loads(reader.communicate(timeout=120)[0]) for reader in readers]
    assert writer.returncode == 0, writer.stderr

    for result in results:
        assert result["bad"] == [], f"partial or missing files seen: {result['bad']}"
        # the reads overlapped the writes: both versions of every file were seen
        assert set(result["seen"].values()) == {2}, result
    assert _leftovers(out) == []
