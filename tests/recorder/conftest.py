from __future__ import annotations

import itertools
import os
from typing import Iterator

import pytest

from .services import Mosquitto, PostgresCluster, SmallDisk

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def own_pg_cluster() -> Iterator[PostgresCluster]:
    """A cluster of its own, for a test that kills and restarts it."""
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_dsn(pg_cluster: PostgresCluster) -> str:
    """A fresh database in the shared throwaway cluster."""
    return pg_cluster.create_db(f"rec_{os.getpid()}_{next(_db_counter)}")


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    b = Mosquitto()
    try:
        yield b
    finally:
        b.destroy()


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    """A 512 KiB tmpfs (really fills up; SQLite's WAL index alone takes 32 KiB of it);
    unmounted afterwards."""
    disk = SmallDisk("512k")
    try:
        yield disk
    finally:
        disk.destroy()
