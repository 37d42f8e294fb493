"""The profile library (pyDE1's profile table in SQLite) and DE1Client upload by id, against a
real SQLite file and the simulated DE1."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from pyburnerkit.de1 import codec
from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.library import ProfileLibrary, ProfileNotFoundError
from pyburnerkit.errors import ConfigurationError, WriteNotAllowedError
from pyburnerkit.rigs.espresso import DE1Rig

from .test_client import make
from .test_profile_firmware import PROFILE

SOURCE = json.dumps(PROFILE, indent=2).encode("utf-8")


@pytest.fixture
def lib(tmp_path: Path) -> ProfileLibrary:
    return ProfileLibrary(str(tmp_path / "pyburnerkit.db"))


def test_store_keys_by_sha1_of_the_source(lib: ProfileLibrary) -> None:
    entry = lib.store(SOURCE)
    assert entry.id == hashlib.sha1(SOURCE).hexdigest()
    assert entry.title == "Test blooming" and entry.author == "pyburnerkit"
    assert entry.beverage_type == "espresso" and entry.source == SOURCE
    assert entry.fingerprint == entry.program().fingerprint
    again = lib.store(SOURCE)  # the same source: still one entry, first date kept
    assert again.date_added == entry.date_added and len(lib) == 1
    # a re-formatted file is another profile, as in pyDE1
    other = lib.store(json.dumps(PROFILE))
    assert other.id != entry.id and len(lib) == 2
    assert {e.id for e in lib.list()} == {entry.id, other.id}
    assert entry.id in lib and "nope" not in lib
    assert lib.source(entry.id) == SOURCE


def test_store_refuses_invalid_profiles(lib: ProfileLibrary) -> None:
    bad = dict(PROFILE, steps=[dict(PROFILE["steps"][0], flow=17)])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="flow=17 mL/s is out of range"):
        lib.store(json.dumps(bad))
    assert len(lib) == 0


def test_select_remembers_the_last_profile(lib: ProfileLibrary) -> None:
    assert lib.selected is None
    entry = lib.store(SOURCE)
    lib.select(entry.id)
    assert lib.selected == entry.id
    with pytest.raises(ProfileNotFoundError, match="no profile with id 'f00'"):
        lib.select("f00")
    assert lib.selected == entry.id


def test_unknown_ids_and_delete(lib: ProfileLibrary) -> None:
    with pytest.raises(ProfileNotFoundError) as info:
        lib.get("abc")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ConfigurationError)
    entry = lib.store(SOURCE)
    lib.delete(entry.id)
    assert len(lib) == 0
    with pytest.raises(ProfileNotFoundError):
        lib.delete(entry.id)


def test_pyde1_sql_runs_against_it(lib: ProfileLibrary) -> None:
    entry = lib.store(SOURCE)
    lib.select(entry.id)
    # pyDE1's set_profile_by_id query and its last_profile lookup, unchanged
    db = sqlite3.connect(lib.path)
    try:
        row = db.execute("SELECT source, source_format FROM profile WHERE id == :id",
                         (entry.id,)).fetchone()
        last = db.execute("SELECT value FROM persist_hkv WHERE header == 'last_profile' "
                          "AND key == 'id'").fetchone()
    finally:
        db.close()
    assert row == (SOURCE, "JSONv2") and last == (entry.id,)


def test_a_pyde1_database_opens_as_a_library(tmp_path: Path) -> None:
    path = str(tmp_path / "pyde1.sqlite3")
    db = sqlite3.connect(path)
    try:
        with db:  # pyDE1's schema, with its placeholder row
            db.execute("CREATE TABLE profile (id TEXT NOT NULL PRIMARY KEY, source BLOB NOT "
                       "NULL, source_format TEXT NOT NULL, fingerprint TEXT NOT NULL, "
                       "date_added REAL, title TEXT, author TEXT, notes TEXT, "
                       "beverage_type TEXT)")
            db.execute("INSERT INTO profile (id, source, source_format, fingerprint, "
                       "date_added) VALUES ('dummy', 'dummy', 'dummy', 'dummy', 0)")
            db.execute("INSERT INTO profile VALUES (?, ?, 'JSONv2', 'x', 5, 'Old', '', '', "
                       "'espresso')", (hashlib.sha1(SOURCE).hexdigest(), SOURCE))
    finally:
        db.close()
    lib = ProfileLibrary(path)
    assert [e.title for e in lib.list()] == ["Old"]
    assert "dummy" not in lib and len(lib) == 1
    assert lib.program(hashlib.sha1(SOURCE).hexdigest()).title == "Test blooming"


@pytest.fixture
def de1(rig: DE1Rig) -> Iterator[DE1Client]:
    client = make(rig, allow_writes=True)
    client.connect()
    try:
        yield client
    finally:
        client.close()


def test_upload_by_id(rig: DE1Rig, de1: DE1Client, lib: ProfileLibrary) -> None:
    entry = lib.store(SOURCE)
    accepted = rig.run(lambda: rig.de1.profiles_accepted)
    program = de1.upload_profile_by_id(entry.id, lib)
    assert program.profile_id == entry.id
    assert rig.run(lambda: rig.de1.profiles_accepted) == accepted + 1
    assert rig.run(lambda: rig.de1.header[1]) == 2  # the stored profile's two frames
    assert lib.selected == entry.id
    assert de1.profile is not None and de1.profile.profile_id == entry.id


def test_upload_by_unknown_id_sends_nothing(rig: DE1Rig, de1: DE1Client,
                                            lib: ProfileLibrary) -> None:
    with pytest.raises(ProfileNotFoundError):
        de1.upload_profile_by_id("0" * 40, lib)
    assert rig.run(lambda: [u for u, _ in rig.de1.writes if u == codec.HEADER_WRITE]) == []


def test_upload_by_id_needs_writes(rig: DE1Rig, lib: ProfileLibrary) -> None:
    entry = lib.store(SOURCE)
    with make(rig).connect() as reader:
        with pytest.raises(WriteNotAllowedError):
            reader.upload_profile_by_id(entry.id, lib)
    assert lib.selected is None


def test_upload_profile_stores_and_selects_in_a_library(de1: DE1Client,
                                                        lib: ProfileLibrary) -> None:
    program = de1.upload_profile(SOURCE, library=lib)
    assert program.profile_id in lib and lib.selected == program.profile_id
    assert lib.get(program.profile_id).fingerprint == program.fingerprint


def test_library_path_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        ProfileLibrary(":memory:")
    with pytest.raises(ConfigurationError, match="timeout"):
        ProfileLibrary("x.db", timeout=0)
