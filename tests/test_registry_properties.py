"""Laws of instance-spec resolution, checked with hypothesis on a real registry of each SQL
backend (a SQLite file, a PostgreSQL database)."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowpolicy.errors import RegistryError
from flowpolicy.registry import EntityRef, Scope, parse_spec

ME = EntityRef("user", "tester")
_names = (f"asset_{i}" for i in itertools.count())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def reg(request):
    """One registry per module and backend (hypothesis runs many examples per test; each
    example works on an asset of its own)."""
    from conftest import Backend

    with tempfile.TemporaryDirectory() as folder:
        if request.param == "sqlite":
            path = Path(folder) / "registry.db"
            location, database = Backend("sqlite", f"sqlite:///{path}", path), None
        else:
            server = request.getfixturevalue("postgres_server")
            database = server.create_database()
            location = Backend("postgresql", server.url(database))
        registry = location.open()
        yield registry
        registry.close()
        if database:
            server.drop_database(database)


def fresh_asset(reg, versions: int) -> Scope:
    scope = Scope("laws", "dev", "model", next(_names))
    for i in range(versions):
        reg.register(scope, kind="artifact", created_by=ME, annotations={"n": i + 1})
    return scope


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), back=st.integers(0, 40))
def test_latest_minus_n_is_version_latest_minus_n(reg, n, back):
    scope = fresh_asset(reg, n)
    if back < n:
        by_back = reg.resolve(scope, f"latest-{back}")
        assert by_back == reg.resolve(scope, f"v{n - back}")
        assert by_back.annotations["n"] == str(n - back)
    else:
        with pytest.raises(RegistryError, match=f"has v1…v{n}" if n > 1 else "has v1"):
            reg.resolve(scope, f"latest-{back}")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 20), version=st.integers(1, 40))
def test_version_specs_hit_exactly_the_existing_versions(reg, n, version):
    scope = fresh_asset(reg, n)
    if version <= n:
        assert reg.resolve(scope, f"v{version}").version == version
    else:
        with pytest.raises(RegistryError, match=f"v{version} of .* does not exist"):
            reg.resolve(scope, f"v{version}")


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 10), data=st.data())
def test_alias_resolves_to_what_it_was_set_to_and_history_chains(reg, n, data):
    scope = fresh_asset(reg, n)
    targets = data.draw(st.lists(st.integers(1, n), min_size=1, max_size=6))
    for target in targets:
        spec = data.draw(st.sampled_from([f"v{target}", f"latest-{n - target}"]))
        reg.set_alias(scope, "pointer", spec, by=ME)
        assert reg.resolve(scope, "@pointer") == reg.resolve(scope, f"v{target}")
    history = reg.alias_history(scope, "pointer")
    assert [m.to_version for m in history] == targets
    assert [m.from_version for m in history] == [None, *targets[:-1]]


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=12))
def test_parse_spec_accepts_exactly_the_four_forms(text):
    try:
        parsed = parse_spec(text)
    except RegistryError:
        return
    if parsed.back is not None:
        assert text == "latest" or text == f"latest-{parsed.back}"
    elif parsed.version is not None:
        assert text == f"v{parsed.version}" and parsed.version >= 1
    else:
        assert text == f"@{parsed.alias}" and parsed.alias


@settings(max_examples=50, deadline=None)
@given(annotations=st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.text(max_size=8)),
    max_size=6))
def test_annotations_are_stored_as_their_str(reg, annotations):
    scope = Scope("laws", "dev", "data", next(_names))
    reg.register(scope, kind="artifact", created_by=ME, annotations=annotations)
    assert dict(reg.resolve(scope).annotations) == {k: str(v) for k, v in annotations.items()}
