"""``flowpolicy report``: the HTML page of a registry's history, checked against the registry
it was made from (in-process, and as headless Chromium renders it), with hostile registry
text, odd evidence details, a large registry and the command's failure modes."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from flowpolicy.registry import EntityRef, Scope, open_registry
from flowpolicy.registry.base import EvidenceRecord
from flowpolicy.report import ReportRequest, build_report, render_page, write_report
from flowpolicy.report.history import read_history

ME = EntityRef("user", "tester")


@pytest.fixture
def demo_registry(demo_run) -> str:
    """The registry ``flowpolicy demo`` leaves behind (eleven real Metaflow runs, shared with
    the demo's own test)."""
    assert demo_run.returncode == 0, demo_run.stdout + demo_run.stderr
    return demo_run.registry


def report_cli(*args: str, cwd: Path, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "flowpolicy", "report", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


# -- reading a page back ----------------------------------------------------------------------


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None]):
        self.tag, self.attrs, self.children = tag, attrs, []

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def find_all(self, test) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if test(child):
                    found.append(child)
                found += child.find_all(test)
        return found

    def having(self, attr: str, value: str | None = None) -> list[Node]:
        return self.find_all(lambda n: attr in n.attrs and value in (None, n.attrs[attr]))


_VOID = {"meta", "br", "img", "link", "input", "hr", "circle", "line", "rect", "path"}


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.tags.append((tag, node.attrs))
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse_page(text: str) -> _TreeBuilder:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder


def table_rows(section: Node, kind: str) -> dict[str, list[list[str]]]:
    """Rows of the ``kind`` tables of a section, by their instance, as cell texts."""
    rows: dict[str, list[list[str]]] = {}
    for table in section.find_all(lambda n: n.tag == "table" and n.attrs.get("class") == kind):
        for tr in table.having("data-instance"):
            cells = [td.text.strip() for td in tr.children if isinstance(td, Node)]
            rows.setdefault(tr.attrs["data-instance"], []).append(cells)
    return rows


def close_to(shown: str, value: float) -> bool:
    """A number as the page shows it (4 significant digits) is the recorded one."""
    number = float(shown.split()[0])
    return abs(number - value) <= 5e-4 * max(abs(value), 1e-9)


def assert_page_matches_registry(page: str, url: str) -> None:
    """Every count, alias, gate value, champion value, drift D and event count on the page is
    the registry's, read here independently through the registry Protocol."""
    root = parse_page(page).root
    registry = open_registry(url, read_only=True)
    summaries = registry.assets()
    instances = {s.scope: registry.instances(s.scope, None) for s in summaries}
    evidence = {scope: [e for i in found for e in registry.evidence(scope, i.id)]
                for scope, found in instances.items()}
    events = registry.events()
    totals = {n.attrs["data-total"]: int(n.text.replace(",", ""))
              for n in root.having("data-total")}
    assert totals == {
        "branches": len({(s.scope.project, s.scope.branch) for s in summaries}
                        | {(e.project, e.branch) for e in events}),
        "assets": len(summaries), "instances": sum(map(len, instances.values())),
        "alias moves": sum(len(registry.alias_history(s.scope)) for s in summaries),
        "decisions": sum(map(len, evidence.values())), "events": len(events)}
    assert "registry " + url in root.text

    for summary in summaries:
        scope = summary.scope
        key = f"{scope.project}/{scope.branch}/{scope.asset_type}/{scope.name}"
        (section,) = root.having("data-scope", key)
        facts = {n.attrs["data-fact"]: n.text for n in section.having("data-fact")}
        assert facts["instances"] == str(len(instances[scope]))
        assert facts["latest"] == f"v{summary.latest_version}"
        assert facts["decisions"] == str(len(evidence[scope]))
        assert {n.attrs["data-alias"]: n.text for n in section.having("data-alias")} == {
            alias: f"v{version}" for alias, version in registry.aliases(scope).items()}
        assert set(table_rows(section, "instances")) == {i.id for i in instances[scope]}
        gates = table_rows(section, "gates")
        champions = table_rows(section, "champion")
        drift = table_rows(section, "drift")
        promotions = table_rows(section, "promotions")
        for record in evidence[scope]:
            instance, details = f"v{record.version}", record.details
            if record.kind == "gate":
                (cells,) = [c for c in gates[instance] if c[2] == ("pass" if record.passed
                                                                    else "fail")]
                assert close_to(cells[3], details["checks"][0]["value"])
            elif record.kind == "champion":
                (cells,) = champions[instance]
                assert close_to(cells[2], details["candidate_value"])
                assert cells[7] == ("promoted" if details["promote"] else "kept")
            elif record.kind == "drift":
                (cells,) = drift[instance]
                assert cells[3] == details["level"] and cells[5] == details["worst_column"]
                assert close_to(cells[4], details["max_statistic"])
            elif record.kind == "promotion":
                verdicts = [c[3] for c in promotions[instance]]
                assert ("allowed" if record.passed else "refused") in verdicts
    for branch in {(e.project, e.branch) for e in events}:
        (section,) = root.having("data-branch", "/".join(branch))
        published = [e for e in events if (e.project, e.branch) == branch]
        assert f"{len(published)} published" in section.text
        for span in section.having("data-event"):
            count = sum(e.name == span.attrs["data-event"] for e in published)
            assert span.text.endswith(f"× {count}")


# -- against the demo's registry ----------------------------------------------------------------


@pytest.mark.flows
def test_report_of_the_demo_matches_its_registry(demo_registry):
    registry = open_registry(demo_registry, read_only=True)
    history, page = build_report(registry)
    assert_page_matches_registry(page, demo_registry)
    # the demo's decisions are all there: a failed and passed gates, allowed promotions, the
    # first champion and the retrained one beating it, drift at level high
    text = parse_page(page).root.text
    for expected in ("f1_score = 0.6985 is below the minimum 0.8", "allowed",
                     "no champion yet: v1 becomes the first champion",
                     "v2 beats champion v1", "tx_last_24h", "retrain_required"):
        assert expected in html.unescape(text), expected


@pytest.mark.flows
def test_cli_writes_the_page_and_names_the_registry(demo_registry, tmp_path):
    out = tmp_path / "history.html"
    done = report_cli("-o", str(out), "--registry", demo_registry, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and f"from registry {demo_registry}" in done.stdout
    assert "5 assets on 3 branches, 10 instances" in done.stdout
    assert_page_matches_registry(out.read_text(), demo_registry)
    assert [p.name for p in tmp_path.iterdir()] == ["history.html"]  # no temporary left
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)


@pytest.mark.flows
def test_page_is_self_contained(demo_registry):
    _, page = build_report(open_registry(demo_registry, read_only=True))
    builder = parse_page(page)
    assert "script" not in {tag for tag, _ in builder.tags}
    for tag, attrs in builder.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "action", "srcset", "poster", "data"):
                assert value.startswith("#"), (tag, name, value)  # only links within the page
    (csp,) = [a["content"] for t, a in builder.tags
              if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp


# -- in a real browser -------------------------------------------------------------------------

_CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                   "--disable-background-networking", "--disable-quic", "--no-first-run",
                   "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                   "--enable-logging=stderr", "--v=0")


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium is not installed here (.ci/run installs Debian's package)")
    return subprocess.run([binary, *_CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                           page.as_uri()], capture_output=True, text=True, timeout=180)


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to the console (errors, CSP violations, uncaught exceptions):
    Chromium logs each as a ``CONSOLE`` line with ``--enable-logging=stderr``."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.flows
def test_chromium_renders_the_report_without_console_errors(demo_registry, tmp_path):
    from PIL import Image

    page = tmp_path / "report.html"
    write_report(ReportRequest(output=page, registry=demo_registry))
    shot = tmp_path / "report.png"
    done = chromium(page, tmp_path / "profile-shot", "--window-size=1280,1600",
                    f"--screenshot={shot}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 1600)
    colours = image.getcolors(maxcolors=1 << 20)
    background = max(colours)[0]
    assert len(colours) > 50, "the screenshot is blank or nearly so"
    assert image.width * image.height - background > 0.05 * image.width * image.height

    dom = chromium(page, tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0 and console_messages(dom.stderr) == []
    assert_page_matches_registry(dom.stdout, demo_registry)

    # the console check can fail: a page with a script error and a blocked load is caught
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace(
        "</body>", '<img src="https://example.invalid/x.png"></body>'))
    caught = chromium(broken, tmp_path / "profile-broken", "--dump-dom")
    assert any("Content Security Policy" in m for m in console_messages(caught.stderr))


# -- hostile and odd registry content ---------------------------------------------------------

HOSTILE = ('<script>alert("x")</script>', '"><img src=x onerror=alert(1)>',
           "</table></section><h1>fake</h1>", "&lt;already escaped&gt;", "javascript:alert(1)")


def test_registry_text_is_shown_never_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = open_registry(url)
    scope = Scope("p", "dev", "model", HOSTILE[1])
    for text in HOSTILE:
        record = registry.register(scope, kind="artifact", description=text,
                                   created_by=EntityRef("task", text),
                                   annotations={text: text, "note": text * 40})
        registry.set_alias(scope, "production", record.id, by=ME, reason=text)
        registry.add_evidence(scope, record.id, kind="gate", rule="quality", passed=False,
                              policy_hash=text, created_by=ME,
                              details={"reason": text, "checks": [{"metric": text,
                                                                   "value": 0.5, "min": 1}]})
        registry.publish_event("p", "dev", "odd_event", {"text": text}, ME)
    page = render_page(read_history(registry), "2024-01-01T00:00:00Z")
    builder = parse_page(page)
    allowed = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3",
               "h4", "p", "code", "dl", "div", "dt", "dd", "nav", "table", "tr", "th", "td",
               "a", "main", "section", "small", "span", "figure", "figcaption", "i", "br",
               "svg", "line", "text", "circle", "path", "rect"}
    assert {tag for tag, _ in builder.tags} <= allowed
    assert not [name for _, attrs in builder.tags for name in attrs if name.startswith("on")]
    assert len(builder.root.having("data-scope")) == 1  # no section was closed or faked
    shown = builder.root.text
    for text in HOSTILE:
        assert text in shown


def test_odd_evidence_details_are_shown_as_far_as_they_go(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = open_registry(url)
    model = Scope("p", "dev", "model", "m")
    data = Scope("p", "dev", "data", "d")
    for _ in range(3):
        registry.register(model, kind="artifact", created_by=ME)
        registry.register(data, kind="artifact", created_by=ME)

    def evidence(scope, instance, kind, details, passed=True, rule="r"):
        registry.add_evidence(scope, instance, kind=kind, rule=rule, passed=passed,
                              policy_hash=None, created_by=ME, details=details)

    evidence(model, "v1", "gate", {"checks": "not a list", "reason": 42})
    evidence(model, "v2", "gate", {"checks": [{"metric": "f1", "value": "nan", "min": "0.8"},
                                              "junk", {"value": True}],
                                   "under_policy": False}, passed=False)
    evidence(model, "v3", "gate", {"checks": [{"metric": "f1", "value": 0.91, "min": 0.8,
                                               "max": "1"}], "under_policy": True})
    evidence(model, "v3", "champion", {"candidate_value": "0.91", "promote": "yes"})
    evidence(model, "v3", "promotion", {"reasons": "one reason, not a list"})
    evidence(data, "v2", "drift", {"statistics": {"a": 0.2, "b": "x", "c": None},
                                   "max_statistic": 0.2, "level": "high",
                                   "thresholds": {"normal": 0, "elevated": 0.05, "high": 0.1}})
    evidence(data, "v3", "drift", {"level": 3, "max_statistic": [0.5]})
    history = read_history(registry)
    # a kind this registry does not take yet (a newer flowpolicy's, another backend's) is
    # listed, not dropped
    first = history.branches[0]
    scope = next(s for s in first.scopes if s.scope == model)
    odd = EvidenceRecord(model, 3, "custom_kind", "r", True, None, {"anything": [1, 2]},
                         "2024-01-01T00:00:00Z", ME)
    patched = replace(first, scopes=tuple(
        replace(s, evidence=(*s.evidence, odd)) if s is scope else s for s in first.scopes))
    page = render_page(replace(history, branches=(patched,)), "2024-01-01T00:00:00Z")
    root = parse_page(page).root
    (section,) = root.having("data-scope", "p/dev/model/m")
    gates = table_rows(section, "gates")
    assert gates["v2"][0][2] == "fail not under the policy"
    assert gates["v2"][0][3].startswith("nan in [0.8, +inf]")
    assert gates["v3"][0][2] == "pass" and gates["v1"][0][3] == "–"
    assert table_rows(section, "promotions")["v3"][0][4] == "one reason, not a list"
    assert table_rows(section, "other")["v3"][0][2] == "custom_kind"
    assert table_rows(section, "champion")["v3"][0][7] == "kept"  # "yes" is not a boolean
    (drift,) = root.having("data-scope", "p/dev/data/d")
    rows = table_rows(drift, "drift")
    assert rows["v2"][0][3] == "high" and rows["v3"][0][3] == "3"
    assert rows["v3"][0][4] == "–"
    levels = drift.find_all(lambda n: n.tag == "line" and n.attrs.get("class") == "level")
    assert len(levels) == 4  # elevated and high, in the time chart and the column bars


def test_page_size_does_not_grow_with_the_registry(tmp_path):
    sizes = {}
    for count in (1000, 5000):  # above every cap: 25 rows, 300 points per series
        registry = open_registry(f"sqlite:///{tmp_path / f'{count}.db'}")
        scope = Scope("p", "dev", "model", "m")
        for i in range(count):
            record = registry.register(scope, kind="artifact", created_by=ME,
                                       annotations={"f1_score": i / count, "blob": "x" * 500})
            registry.add_evidence(scope, record.id, kind="gate", rule="q",
                                  passed=i % 3 > 0, policy_hash="h", created_by=ME,
                                  details={"checks": [{"metric": "f1_score",
                                                       "value": i / count, "min": 0.3}]})
            if i % 2:
                registry.set_alias(scope, "champion", record.id, by=ME)
        page = render_page(read_history(registry), "2024-01-01T00:00:00Z")
        sizes[count] = len(page.encode())
        assert f"the newest 25 of {count:,}" in page
        assert f"300 of {count:,} points drawn" in html.unescape(page)
    assert sizes[5000] < 1.05 * sizes[1000], sizes


# -- the command's failure modes ----------------------------------------------------------------


def test_missing_registry_is_exit_2_and_creates_nothing(tmp_path):
    done = report_cli("--registry", f"sqlite:///{tmp_path / 'none.db'}", cwd=tmp_path)
    assert done.returncode == 2 and "no registry at" in done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


def test_nothing_to_report_is_exit_1_and_keeps_the_old_page(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = open_registry(url)
    registry.register(Scope("p", "dev", "data", "d"), kind="artifact", created_by=ME)
    registry.close()
    out = tmp_path / "report.html"
    assert report_cli("--registry", url, cwd=tmp_path).returncode == 0
    before = out.read_bytes()
    done = report_cli("--registry", url, "--project", "other", cwd=tmp_path)
    assert done.returncode == 1
    assert "holds no assets and no events for project other" in done.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("registry.db")) \
        == ["report.html"]


def test_output_folder_that_does_not_exist_is_a_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = open_registry(url)
    registry.register(Scope("p", "dev", "data", "d"), kind="artifact", created_by=ME)
    registry.close()
    done = report_cli("--registry", url, "-o", str(tmp_path / "no" / "such" / "r.html"),
                      cwd=tmp_path)
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
