"""``pyburnerkit.cli.progress``: a bar on a terminal, lines elsewhere, and always an ending."""

from __future__ import annotations

import io
import os
import pty
import select
import struct
import termios
import fcntl

import pytest

from pyburnerkit.cli.progress import Progress


def test_lines_when_not_a_terminal_start_move_and_end() -> None:
    out = io.StringIO()
    with Progress("firmware upload", 8192, stream=out, interval=0) as progress:
        assert not progress.terminal
        progress.update(0, phase="erasing")
        progress.update(4096, phase="uploading")
        progress.update(8192)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("firmware upload: started: 0 B of 8.0 KiB (0 %)")
    assert lines[1].startswith("firmware upload: erasing: 0 B of 8.0 KiB")
    assert lines[2].startswith("firmware upload: uploading: 4.0 KiB of 8.0 KiB (50 %)")
    assert lines[-1].startswith("firmware upload: done: 8.0 KiB of 8.0 KiB (100 %)")


def test_an_interruption_is_the_last_line() -> None:
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with Progress("mate3 dump", 1000, unit="registers", stream=out, interval=3600) as p:
            p.update(250)
            raise KeyboardInterrupt
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("mate3 dump: interrupted at 250 registers of 1000 registers (25 %)")


def test_a_terminal_gets_a_tqdm_bar_with_rate() -> None:
    # a real pseudo-terminal: isatty() is true as on a user's console
    master, slave = pty.openpty()
    # a console has a size; a fresh pseudo-terminal says 0 columns until told
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            with Progress("firmware upload", 8192, stream=tty) as progress:
                assert progress.terminal
                progress.update(4096, phase="uploading")
                progress.update(8192)
        drawn = _drain(master)
    finally:
        os.close(master)
        os.close(slave)
    assert "firmware upload: 100%|" in drawn and "/s" in drawn
    assert "started:" not in drawn  # no log lines on a terminal


def _drain(fd: int) -> str:
    """Everything already written to the terminal (the writer is done: no waiting)."""
    chunks = []
    while select.select([fd], [], [], 0)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode()
