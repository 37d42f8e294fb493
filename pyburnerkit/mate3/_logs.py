"""Keep pymodbus' own error log lines off a bare stderr.

pymodbus logs, as ERROR, things this driver already reports as typed exceptions: a request
without an answer ("No response received after 0 retries"), a garbled reply ("Invalid Modbus
protocol id"), a failed connect. With no logging configured, Python's last-resort handler
prints each of them to stderr, with a hex dump of the last frames the in-process simulator
handled appended (password writes included). A :class:`logging.NullHandler` on the
``pymodbus`` logger stops only that last-resort printing: an application that configures
logging still receives every pymodbus record through propagation.
"""

from __future__ import annotations

import logging
import threading

_lock = threading.Lock()
_done = False


def quiet_pymodbus() -> None:
    """Give the ``pymodbus`` logger one NullHandler (idempotent, thread-safe)."""
    global _done
    if _done:
        return
    with _lock:
        if not _done:
            logging.getLogger("pymodbus").addHandler(logging.NullHandler())
            _done = True
