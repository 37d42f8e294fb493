"""Fake ``gatttool -I`` and ``hcitool lescan`` programs backed by a :class:`BleSimHost`.

They print exactly what BlueZ 5.66 prints (checked against ``attrib/interactive.c`` and the
captures in ``specs/pygatt.md`` section 4.4), so unmodified pygatt (pexpect, its regexes and its
receiver thread) runs against them. Kept free of heavy imports: it starts for every
``GATTToolBackend.start()``.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import termios
import time
from collections import deque
from typing import Deque, List, Optional, Tuple, Union

_EMPTY = "[                 ][LE]> "


def _connect_host(addr: Tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(addr, timeout=5)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _hexbytes(hexstr: str) -> str:
    data = bytes.fromhex(hexstr)
    return "".join(f"{b:02x} " for b in data)


class _DeadSocket:
    """Stands in for the host link after the simulator went away: requests go nowhere."""

    def fileno(self) -> int:
        return -1

    def sendall(self, data: bytes) -> None:
        pass

    def recv(self, n: int) -> bytes:
        return b""

    def close(self) -> None:
        pass


class _FakeGatttool:
    def __init__(self, addr: Tuple[str, int]) -> None:
        self.sock: Union[socket.socket, _DeadSocket] = _connect_host(addr)
        self.address: Optional[str] = None  # last address given to connect
        self.connected = False
        self.pending: Deque[Tuple[str, str]] = deque()  # (kind, extra) awaiting a host reply
        self.inbuf = b""
        self.hostbuf = b""
        self.mtu_done = False
        self.echo = False  # we echo what is typed (see quiet_terminal)

    # -------------------------------------------------------------- output
    def out(self, text: str) -> None:
        data = text.encode()
        while data:
            n = os.write(1, data)
            data = data[n:]

    def prompt(self) -> str:
        if self.connected and self.address:
            return f"\x1b[0;94m[{self.address}]\x1b[0m[LE]> "
        return _EMPTY

    def line(self, text: str) -> None:
        """readline's rl_printf: clear the input line, print, redraw the prompt (one write)."""
        self.out(f"\r\x1b[K{text}\n{self.prompt()}")

    def send(self, text: str) -> None:
        self.sock.sendall((text + "\n").encode())

    # -------------------------------------------------------------- commands
    def command(self, cmd: str) -> bool:
        parts = cmd.split()
        self.out("\x1b[?2004l\r")
        if not parts:
            self.out(self.prompt())
            return True
        op, args = parts[0], parts[1:]
        if op in ("exit", "quit"):
            return False
        if op == "sec-level":
            self.out(self.prompt())
        elif op == "connect":
            if args:
                self.address = args[0].upper()
            if not self.address:
                self.line("\x1b[0;91mError: \x1b[0mRemote Bluetooth address required")
                return True
            self.out(f"Attempting to connect to {self.address}\n{self.prompt()}")
            self.pending.append(("connect", ""))
            self.send(f"C {self.address}")
        elif op == "disconnect":
            if self.connected:
                self.send("D")
            self.connected = False
            self.mtu_done = False
            self.out(self.prompt())
        elif op in ("characteristics", "char-read-uuid", "char-read-hnd", "char-write-req",
                    "char-write-cmd", "mtu", "primary", "char-desc"):
            if not self.connected:
                self.line("\x1b[0;91mCommand Failed: \x1b[0mDisconnected")
                return True
            self.gatt(op, args)
        else:
            self.line(f"\x1b[0;91mError: \x1b[0m{op}: command not found")
        return True

    def gatt(self, op: str, args: List[str]) -> None:
        try:
            if op == "characteristics":
                self.pending.append(("chars", ""))
                self.send("L")
            elif op == "char-read-uuid":
                self.pending.append(("read-uuid", ""))
                self.send(f"R {args[0].lower()}")
            elif op == "char-read-hnd":
                self.pending.append(("read-hnd", ""))
                self.send(f"H {int(args[0], 16)}")
            elif op in ("char-write-req", "char-write-cmd"):
                handle, value = int(args[0], 16), args[1]
                bytes.fromhex(value)
                if op == "char-write-req":
                    self.pending.append(("write", ""))
                    self.send(f"W {handle} {value} 1")
                else:
                    self.send(f"W {handle} {value} 0")
                    self.out(self.prompt())
            elif op == "mtu":
                if self.mtu_done:
                    self.line("\x1b[0;91mError: \x1b[0mMTU exchange can only occur once per "
                              "connection.")
                else:
                    self.mtu_done = True
                    self.line(f"MTU was exchanged successfully: {min(int(args[0]), 247)}")
            else:
                self.out(self.prompt())
        except (IndexError, ValueError):
            self.line(f"\x1b[0;91mError: \x1b[0mInvalid arguments for {op}")

    # -------------------------------------------------------------- host replies
    def reply(self, text: str) -> None:
        parts = text.split(" ", 1)
        op, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        if op in ("N", "I"):
            handle, hexv = rest.split(" ", 1) if " " in rest else (rest, "")
            kind = "Notification handle" if op == "N" else "Indication   handle"
            self.line(f"{kind} = 0x{int(handle):04x} value: {_hexbytes(hexv)}")
            return
        if op == "X":
            self.connected = False
            self.mtu_done = False
            self.line(f"(gatttool:{os.getpid()}): GLib-WARNING **: "
                      f"{time.strftime('%H:%M:%S')}.000: Invalid file descriptor.")
            return
        if op == "CH":
            decl, props, value, uuid = rest.split()
            self.line(f"handle: 0x{int(decl):04x}, char properties: 0x{int(props):02x}, "
                      f"char value handle: 0x{int(value):04x}, uuid: {uuid}")
            return
        if not self.pending:
            return
        if op == "END":
            self.pending.popleft()
            return
        kind, _ = self.pending.popleft()
        if kind == "connect":
            if op == "OK":
                self.connected = True
                self.line("Connection successful")
            else:
                self.line(f"\x1b[0;91mError: \x1b[0m{rest}")
        elif kind == "read-uuid":
            if op == "V":
                handle, hexv = rest.split(" ", 1)
                self.line(f"handle: 0x{int(handle):04x} \t value: {_hexbytes(hexv)}")
            else:
                self.line(f"\x1b[0;91mError: \x1b[0m{rest}")
        elif kind == "read-hnd":
            if op == "V":
                _, hexv = rest.split(" ", 1)
                self.line(f"Characteristic value/descriptor: {_hexbytes(hexv)}")
            else:
                self.line(f"\x1b[0;91mError: \x1b[0m{rest}")
        elif kind == "write":
            if op == "OK":
                self.line("Characteristic value was written successfully")
            else:
                self.line(f"\x1b[0;91mError: \x1b[0m{rest}")
        elif kind == "chars":
            self.pending.appendleft(("chars", ""))  # an error line ends nothing; keep waiting
            if op == "E":
                self.pending.popleft()
                self.line(f"\x1b[0;91mError: \x1b[0m{rest}")

    # -------------------------------------------------------------- main loop
    def quiet_terminal(self, fd: int) -> None:
        """Turn the terminal's own echo off and echo typed lines ourselves, as readline does.

        gatttool reads its commands through readline, which switches the kernel's echo off
        and echoes what is typed itself, on the same thread that prints everything else: an
        echoed command never lands inside a notification line. The kernel's echo happens
        whenever the other side writes, so it could split a line (pygatt then parsed the
        command's text as a notification's value and its receiver thread died).
        """
        if not os.isatty(fd):
            return
        attrs = termios.tcgetattr(fd)
        attrs[3] &= ~termios.ECHO  # lflag; canonical input (whole lines) stays on
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self.echo = True

    def run(self) -> int:
        stdin = 0
        self.quiet_terminal(stdin)
        self.out("\x1b[?2004h" + _EMPTY)
        while True:
            watch = [stdin] + ([self.sock] if self.sock.fileno() >= 0 else [])
            ready, _, _ = select.select(watch, [], [])
            if self.sock in ready:
                data = self.sock.recv(65536)
                if not data:
                    # the simulated radio went away (a power cycle): the link is lost, the
                    # program keeps running like gatttool does
                    if self.connected:
                        self.reply("X")
                    self.pending.clear()
                    self.sock.close()
                    self.sock = _DeadSocket()
                    continue
                self.hostbuf += data
                while b"\n" in self.hostbuf:
                    raw, self.hostbuf = self.hostbuf.split(b"\n", 1)
                    self.reply(raw.decode("ascii", "replace").strip())
            if stdin in ready:
                try:
                    data = os.read(stdin, 4096)
                except OSError:
                    return 0
                if not data:
                    return 0
                self.inbuf += data.replace(b"\r", b"\n")
                while b"\n" in self.inbuf:
                    raw, self.inbuf = self.inbuf.split(b"\n", 1)
                    text = raw.decode("utf-8", "replace")
                    if self.echo:
                        self.out(text + "\n")  # what the terminal's echo printed
                    if not self.command(text.strip()):
                        return 0


def gatttool_main(addr: Tuple[str, int]) -> int:
    """Entry point of the fake ``gatttool`` (``-i hciN -I`` and options are accepted, ignored)."""
    signal.signal(signal.SIGHUP, lambda *a: os._exit(0))
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    signal.signal(signal.SIGINT, lambda *a: os._exit(0))
    if "-I" not in sys.argv[1:] and "--interactive" not in sys.argv[1:]:
        sys.stderr.write("fake gatttool: only interactive mode (-I) is simulated\n")
        return 2
    try:
        fake = _FakeGatttool(addr)
    except OSError as exc:
        sys.stderr.write(f"fake gatttool: the simulated radio at {addr} is not running: {exc}\n")
        return 1
    return fake.run()


def hcitool_main(addr: Tuple[str, int]) -> int:
    """Entry point of the fake ``hcitool``: ``lescan`` lists simulated devices until SIGINT."""
    args = sys.argv[1:]
    if "lescan" not in args:
        sys.stderr.write("fake hcitool: only 'lescan' is simulated\n")
        return 2
    signal.signal(signal.SIGINT, lambda *a: os._exit(0))
    signal.signal(signal.SIGHUP, lambda *a: os._exit(0))
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    try:
        sock = _connect_host(addr)
    except OSError as exc:
        sys.stderr.write(f"Set scan parameters failed: {exc}\n")
        return 1
    sock.sendall(b"S\n")
    buf = b""
    sys.stdout.write("LE Scan ...\n")
    sys.stdout.flush()
    while b"END\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    sock.close()
    for raw in buf.decode().splitlines():
        if raw.startswith("DEV "):
            _, address, name = raw.split(" ", 2)
            sys.stdout.write(f"{address} (unknown)\n{address} {name}\n")
    sys.stdout.flush()
    while True:  # lescan runs until interrupted
        signal.pause()
