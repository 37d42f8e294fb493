"""Real services for the recorder tests: a throwaway PostgreSQL cluster and mosquitto.

Both run as real processes on free 127.0.0.1 ports in temporary directories and are removed
afterwards. A missing tool is a test FAILURE with the install command, never a skip.
PostgreSQL refuses to run as root, so when the tests run as root the cluster runs as ``nobody``.
"""

from __future__ import annotations

import errno
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Dict, List, Optional

import pytest

APT_HINT = "install it with: apt-get install -y postgresql mosquitto"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before listening")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on port {port} after {timeout} s")
            time.sleep(0.05)  # sleep-ok: an external process binding has no event to wait on


def find_pg_tool(name: str) -> str:
    """``initdb``/``pg_ctl`` from PATH, else Debian's /usr/lib/postgresql/<ver>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")])
    if candidates:
        return candidates[-1]
    pytest.fail(f"PostgreSQL's {name} is not installed (not on PATH nor in "
                f"/usr/lib/postgresql/*/bin); {APT_HINT}", pytrace=False)
    raise AssertionError  # unreachable


class PostgresCluster:
    def __init__(self) -> None:
        self.initdb = find_pg_tool("initdb")
        self.pg_ctl = find_pg_tool("pg_ctl")
        self.port = free_port()
        self.base = tempfile.mkdtemp(prefix="pbk-pg-")
        self.data = os.path.join(self.base, "data")
        self.log = os.path.join(self.base, "server.log")
        self.user: Optional[str] = None
        if os.geteuid() == 0:
            self.user = "nobody"
            pw = pwd.getpwnam(self.user)
            os.chmod(self.base, 0o755)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        try:
            self._setup()
        except BaseException:
            self.destroy()
            raise

    def _setup(self) -> None:
        self._run([self.initdb, "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                   "--no-sync", "--locale=C"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as fh:
            # fsync off is safe for a killed server (the OS keeps its writes), but
            # synchronous_commit must stay on: with it off, "stop -m immediate" loses commits
            # the server already acknowledged, and the no-loss test would rightly fail.
            fh.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                     f"unix_socket_directories = '{self.base}'\nfsync = off\n"
                     "full_page_writes = off\n"
                     "max_connections = 50\nshared_buffers = 32MB\n")
        self.start()

    def _run(self, argv: List[str], check: bool = True) -> subprocess.CompletedProcess:
        kw: Dict[str, object] = {}
        if self.user is not None:
            kw["user"] = self.user
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              check=check, cwd=self.base, timeout=60, **kw)  # type: ignore

    def start(self) -> None:
        self._run([self.pg_ctl, "-D", self.data, "-l", self.log, "-w", "-t", "30", "start"])
        wait_port(self.port, 30)

    def stop(self, mode: str = "fast") -> None:
        self._run([self.pg_ctl, "-D", self.data, "-w", "-t", "30", "-m", mode, "stop"],
                  check=False)

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_db(self, name: str) -> str:
        import psycopg
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


class Mosquitto:
    """mosquitto on a free port. ``persistent=True`` keeps sessions and queued QoS 1 messages
    across a restart (saved on a clean stop), like a production broker."""

    def __init__(self, persistent: bool = False, password_file: Optional[str] = None,
                 start: bool = True) -> None:
        exe = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if exe is None:
            pytest.fail(f"mosquitto is not installed; {APT_HINT}", pytrace=False)
        self.exe = exe
        self.port = free_port()
        self.base = tempfile.mkdtemp(prefix="pbk-mqtt-")
        os.chmod(self.base, 0o777)  # mosquitto drops root privileges to its own user
        self.conf = os.path.join(self.base, "mosquitto.conf")
        lines = [f"listener {self.port} 127.0.0.1", "log_dest stderr",
                 "max_inflight_messages 0", "max_queued_messages 100000"]
        if password_file is None:
            lines.append("allow_anonymous true")
        if persistent:
            lines += ["persistence true", f"persistence_location {self.base}/"]
        else:
            lines.append("persistence false")
        with open(self.conf, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.chmod(self.conf, 0o644)
        self.proc: Optional[subprocess.Popen] = None
        if start:
            try:
                self.start()
            except BaseException:
                self.destroy()
                raise

    def add_conf(self, *lines: str) -> None:
        """More config lines (before :meth:`start`); files it names belong in :attr:`base`
        (readable by the mosquitto user, unlike pytest's private tmp_path)."""
        with open(self.conf, "a") as fh:
            fh.write("\n".join(lines) + "\n")

    def start(self) -> None:
        with open(os.path.join(self.base, "mosquitto.log"), "ab") as log:
            self.proc = subprocess.Popen([self.exe, "-c", self.conf], stdout=log, stderr=log)
        try:
            wait_port(self.port, 15, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            with open(os.path.join(self.base, "mosquitto.log"), "rb") as fh:
                tail = fh.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"mosquitto did not start: {exc}\n{tail}") from None

    def stop(self, kill: bool = False) -> None:
        """Stop the broker: SIGTERM (it saves its persistence file) or SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if kill:
                proc.kill()
            else:
                proc.terminate()
            proc.wait(10)

    def destroy(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.base, ignore_errors=True)


class SmallDisk:
    """A tiny tmpfs mounted at a fresh directory: a disk that really fills up.

    Needs root (``mount``), as the CI machines run the tests. A mount that fails is a test
    FAILURE with the reason, never a skip. :meth:`fill` takes every free byte, :meth:`free`
    gives them back, :meth:`read_only` remounts it read-only (root ignores permission bits,
    not a read-only mount).
    """

    def __init__(self, size: str = "64k") -> None:
        self.path = tempfile.mkdtemp(prefix="pbk-disk-")
        self.filler = os.path.join(self.path, "filler")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777",
                                 "tmpfs", self.path], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=30)
        if result.returncode != 0:
            os.rmdir(self.path)
            pytest.fail(f"cannot mount a {size} tmpfs at {self.path} (the disk-full tests "
                        f"need root and mount): {result.stdout.strip()}", pytrace=False)

    def fill(self) -> int:
        """Write a file until the disk says ENOSPC; returns the bytes it took."""
        taken = 0
        chunk = b"\0" * 1024
        with open(self.filler, "ab", buffering=0) as fh:
            while True:
                try:
                    taken += fh.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    return taken

    def free(self) -> None:
        """Space returns: the filler is removed."""
        if os.path.exists(self.filler):
            os.remove(self.filler)

    def remount(self, *options: str) -> None:
        subprocess.run(["mount", "-o", ",".join(("remount",) + options), self.path],
                       check=True, timeout=30)

    def read_only(self, on: bool = True) -> None:
        self.remount("ro" if on else "rw")

    def destroy(self) -> None:
        for argv in (["umount", self.path], ["umount", "-l", self.path]):
            if subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30).returncode == 0:
                break
        shutil.rmtree(self.path, ignore_errors=True)
