"""A stop signal the kernel gives to a thread other than the main one still stops every
foreground command (the simulators, ``serve``, ``record``).

Linux delivers a process-directed signal to any thread that does not block it; it picks
another thread than the main one when the main thread is busy or has a signal pending - right
after a SIGCONT, for one. Python then runs the handler only when the main thread next runs
Python code, and a main thread blocked in ``Event.wait()`` never did: ``kill -TERM`` after
``kill -CONT`` left a simulator running on a loaded CI machine.

To make that delivery certain, each child below blocks the stop signals on its main thread
(and so on every thread it starts, which inherit the mask) and keeps one helper thread, started
before, that does not block them: the kernel can only give the signal to that helper.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator, List

import pytest

from pyburnerkit.cli.signals import STOP_SIGNALS, SignalWait

ROOT = str(Path(__file__).resolve().parents[2])

# The child: a helper thread that takes the signals, then the command on a main thread that
# blocks them.
PRELUDE = textwrap.dedent("""
    import signal, sys, threading
    from pyburnerkit.cli.main import main
    threading.Thread(target=threading.Event().wait, name="takes-the-signals",
                     daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
    sys.exit(main(sys.argv[1:]))
""")


@contextlib.contextmanager
def run_blocked(args: List[str], cwd: Path) -> Iterator["subprocess.Popen[str]"]:
    """The command in a child whose main thread blocks the stop signals; its pipes are
    closed on the way out (the test stops the process itself, with :func:`stops_on`)."""
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_CACHE_HOME=str(cwd / "cache"))
    proc = subprocess.Popen([sys.executable, "-c", PRELUDE, *args], cwd=str(cwd), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


def stops_on(proc: "subprocess.Popen[str]", signum: int) -> int:
    """Send ``signum``; the exit status, or a failure naming what the process said."""
    proc.send_signal(signum)
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"still running 20 s after signal {signum} (delivered to a non-main "
                    f"thread); stderr: {err[-2000:]}")
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_simulator_stops_on_a_signal_another_thread_received(tmp_path: Path,
                                                                signum: int) -> None:
    with run_blocked(["sim", "arbin", "--port", "0", "--channels", "2"], tmp_path) as proc:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert "listening on 127.0.0.1:" in line, proc.stderr.read()  # type: ignore
        assert stops_on(proc, signum) == 0


def test_serve_stops_on_a_signal_another_thread_received(tmp_path: Path) -> None:
    config = tmp_path / "service.toml"
    config.write_text(textwrap.dedent("""
        [[devices]]
        family = "arbin"
        url = "sim://?channels=2"
        id = "cycler"

        [http]
        bind = "127.0.0.1:0"
    """))
    with run_blocked(["serve", str(config)], tmp_path) as proc:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("HTTP=http://127.0.0.1:"), proc.stderr.read()  # type: ignore
        assert stops_on(proc, signal.SIGTERM) == 0
        assert "serve: stopped" in proc.stderr.read()  # type: ignore[union-attr]


def test_record_stops_on_a_signal_another_thread_received(tmp_path: Path) -> None:
    config = tmp_path / "recorder.toml"
    config.write_text(textwrap.dedent("""
        [recorder]
        progress_interval = 3600
        spool_dir = "spool"

        [[devices]]
        family = "arbin"
        url = "sim://?channels=2"
        id = "cycler"

        [[sinks]]
        type = "sqlite"
        path = "samples.db"
    """))
    with run_blocked(["record", "--quiet", str(config)], tmp_path) as proc:
        err = proc.stderr
        assert err is not None
        for line in err:  # blocks until the recorder said it records (or the process ended)
            if line.startswith("recording "):
                break
        else:
            pytest.fail(f"record never started (exit {proc.wait()})")
        assert stops_on(proc, signal.SIGTERM) == 0
        assert "record: stopping" in err.read()


def test_a_signal_that_came_before_the_wait_is_not_lost() -> None:
    """A signal while the command starts is handled by the first wait (in this process:
    pytest runs tests on the main thread)."""
    import threading
    seen: List[int] = []
    stop = threading.Event()

    def handler(signum: int) -> None:
        seen.append(signum)
        stop.set()

    # off the main thread nothing is installed and SIGTERM would end the test process
    assert threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM)
    with SignalWait({signal.SIGTERM: handler}) as signals:
        signal.raise_signal(signal.SIGTERM)
        assert not seen  # only the wait dispatches: a handler never runs mid-start
        assert signals.wait(stop, 10)
    assert seen == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is before  # restored on the way out


def test_wake_ends_a_wait_from_another_thread() -> None:
    import threading
    stop = threading.Event()
    with SignalWait({sig: lambda signum: None for sig in STOP_SIGNALS}) as signals:
        def later() -> None:
            stop.set()
            signals.wake()
        helper = threading.Thread(target=later)
        helper.start()
        assert signals.wait(stop, 10)
        helper.join()
        assert not signals.wait(threading.Event(), 0.01)  # a timeout returns False


def test_mate3_pg_stops_on_a_signal_another_thread_received(tmp_path: Path) -> None:
    """``mate3 pg`` waits an ``--interval`` between readings: a SIGTERM the kernel gave to
    another thread used to leave that wait asleep for the rest of the interval (here an
    hour)."""
    import psycopg

    from ..helpers import wait_until
    from ..recorder.services import PostgresCluster
    config = tmp_path / "config.yaml"
    config.write_text(textwrap.dedent("""
        tables:
          power:
            - port: 1
              device: "charge_controller"
              field: "watts"
              db_column: "cc_watts"
    """))
    cluster = PostgresCluster()
    try:
        dsn = cluster.create_db("mate3pg_signal")

        def rows() -> int:
            with psycopg.connect(dsn) as conn:
                try:
                    return int(conn.execute("SELECT count(*) FROM power").fetchone()[0])
                except psycopg.errors.UndefinedTable:
                    return 0
        with run_blocked(["mate3", "pg", str(config), "-H", "sim://", "--database-url", dsn,
                          "--interval", "3600"], tmp_path) as proc:
            # the first reading is in: the main thread now waits out the hour
            wait_until(lambda: rows() >= 1 or proc.poll() is not None, timeout=30,
                       message="the first reading")
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            assert stops_on(proc, signal.SIGTERM) == 0
            assert "1 row(s) written" in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        cluster.destroy()
