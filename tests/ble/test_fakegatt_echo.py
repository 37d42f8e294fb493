"""The fake gatttool's terminal echo: typed commands never land inside a notification line.

Real gatttool reads commands through readline, which switches the terminal's echo off and
echoes on its own thread, between whole lines. The fake used to leave the kernel's echo on,
which prints the moment pygatt writes: a command could split a notification line, and pygatt
parsed the command's text as the value (its receiver thread died on the ValueError; seen once
in the DE1 throughput benchmark). Here a scripted radio floods notifications while commands
are typed, through a real pty (pexpect, as pygatt spawns it), and every notification line must
parse as pygatt parses it."""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
from pathlib import Path
from typing import List

import pexpect

NOTIFICATION = re.compile(r"Notification handle = .*? \r", re.DOTALL)  # pygatt's pattern
VALUE = re.compile(r".* handle = (0x[0-9a-f]+) value:(.*)", re.DOTALL)
COMMANDS = 300


def _radio(server: socket.socket, stop: threading.Event, acks: List[int]) -> None:
    """Connect and write requests get an OK; once connected, notifications flood in."""
    try:
        conn, _ = server.accept()
    except OSError:  # the fake never came (the test failed before): nothing to serve
        return
    lock = threading.Lock()

    def flood() -> None:
        while not stop.is_set():
            try:
                with lock:
                    conn.sendall(b"N 17 0a0b0c0d0e0f1011121314\n" * 20)
            except OSError:  # the fake was closed: the test is over
                return
            stop.wait(0.001)
    flooder = threading.Thread(target=flood)
    buf = b""
    try:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:  # the fake was killed (reset): the test is over
                break
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.startswith(b"C ") or (line.startswith(b"W ") and line.endswith(b" 1")):
                    try:
                        with lock:
                            conn.sendall(b"OK\n")
                    except OSError:  # the fake was closed: the test is over
                        return
                    acks.append(1)
                    if line.startswith(b"C "):
                        flooder.start()
    finally:
        stop.set()
        if flooder.is_alive():
            flooder.join(5)
        conn.close()


def test_typed_commands_never_split_a_notification_line(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(20)
    port = server.getsockname()[1]
    tool = tmp_path / "gatttool"
    root = Path(__file__).resolve().parents[2]
    tool.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(root)!r})\n"
                    f"from pyburnerkit.ble.fakegatt import gatttool_main\n"
                    f"sys.exit(gatttool_main(('127.0.0.1', {port})))\n")
    tool.chmod(0o755)
    stop = threading.Event()
    acks: List[int] = []
    radio = threading.Thread(target=_radio, args=(server, stop, acks))
    radio.start()
    child = pexpect.spawn(f"{tool} -I", timeout=10)
    child.delaybeforesend = None  # pygatt keeps pexpect's 50 ms; the race needs no pause
    out: List[bytes] = []
    try:
        child.expect(r"\[LE\]>")
        child.sendline("connect AA:BB:CC:DD:EE:FF")
        child.expect("Connection successful")
        for _ in range(COMMANDS):
            child.sendline("char-write-req 0x0012 0102")
            # read as we go, so the pty never fills up and blocks the fake
            try:
                out.append(child.read_nonblocking(1 << 16, timeout=0.002))
            except pexpect.TIMEOUT:
                pass
        # every write's answer is printed after its echo: read until the last one is in
        while b"".join(out).count(b"written successfully") < COMMANDS:
            out.append(child.read_nonblocking(1 << 16, timeout=10))
    finally:
        stop.set()
        child.close(force=True)
        radio.join(10)
        server.close()
    assert len(acks) == COMMANDS + 1  # the connect and every write reached the radio
    text = b"".join(out).decode("utf-8", "replace")
    lines = NOTIFICATION.findall(text)
    assert len(lines) > 200, f"only {len(lines)} notifications were printed"
    bad = []
    for line in lines:
        match = VALUE.match(line)
        try:
            bytearray.fromhex(match.group(2).strip())  # what pygatt does with it
        except (AttributeError, ValueError):
            bad.append(line)
    assert bad == [], f"{len(bad)} of {len(lines)} notification lines split: {bad[0]!r}"
    assert text.count("char-write-req 0x0012 0102\r\n") == COMMANDS  # still echoed, whole
