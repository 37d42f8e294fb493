"""The D-Bus transport: one shared GLib pump thread and private bus connections.

dbus-python dispatches incoming messages (method calls to exported objects, signals, replies)
only through a main-loop integration, and the only one it ships (``DBusGMainLoop``, inside
dbus-python's own C extension) attaches every connection to GLib's process-wide *default*
context. One thread per process can iterate that context, so this module keeps exactly one
pump thread, ``pyburnerkit-victron-glib``, started when the first link opens and stopped when
the last one closes (reference counted: no thread outlives the last client).

The pump never runs user code and never takes a pyburnerkit lock: the handlers it calls only
hand each message to the owning session's I/O thread (``call_soon_threadsafe``). Sending is
done from the session threads directly (libdbus is initialised for threads).

GLib is driven through ``ctypes`` (``libglib-2.0.so.0``): four functions, no PyGObject. The
reasons are in ``docs/victron.rst``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from typing import Any, Callable, Optional

from .._core.extras import require
from ..errors import BackendUnavailableError, ConfigurationError

log = logging.getLogger(__name__)

SYSTEM_BUS_DEFAULT = "unix:path=/var/run/dbus/system_bus_socket"
PUMP_THREAD_NAME = "pyburnerkit-victron-glib"


def resolve_bus_address(bus_address: Optional[str] = None) -> str:
    """The address to use, as Venus picks it.

    An explicit address wins; ``"session"``/``"system"`` name a bus; otherwise the session
    bus when ``DBUS_SESSION_BUS_ADDRESS`` is set, else the system bus.
    """
    if bus_address is not None:
        if not isinstance(bus_address, str) or not bus_address.strip():
            raise ConfigurationError(f"bus_address must be a D-Bus address string, got "
                                     f"{bus_address!r}")
        if bus_address == "system":
            return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", SYSTEM_BUS_DEFAULT)
        if bus_address == "session":
            addr = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
            if not addr:
                raise ConfigurationError("bus_address='session' but DBUS_SESSION_BUS_ADDRESS "
                                         "is not set")
            return addr
        if ":" not in bus_address:
            raise ConfigurationError(f"bus_address {bus_address!r} is not a D-Bus address like "
                                     f"'unix:path=/run/dbus/system_bus_socket'")
        return bus_address
    session = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if session:
        return session
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", SYSTEM_BUS_DEFAULT)


def bus_label(address: str) -> str:
    """A short, readable name for an address (used in thread names and errors)."""
    if address == SYSTEM_BUS_DEFAULT or address == os.environ.get("DBUS_SYSTEM_BUS_ADDRESS"):
        return "system"
    first = address.split(";")[0]
    kind, _, rest = first.partition(":")
    fields = dict(p.partition("=")[::2] for p in rest.split(",") if "=" in p)
    for key in ("path", "abstract", "host"):
        if key in fields:
            where = fields[key]
            if key == "host" and "port" in fields:
                where += ":" + fields["port"]
            return f"{kind}:{where}"
    return first[:60]


class _GLib:
    """The four libglib calls we need, with exact argtypes/restypes."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("glib-2.0") or "libglib-2.0.so.0"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise BackendUnavailableError(
                "victron", "libglib-2.0",
                reason=f"{exc}; install the system package libglib2.0-0") from exc
        lib.g_main_loop_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.g_main_loop_new.restype = ctypes.c_void_p
        lib.g_main_loop_run.argtypes = [ctypes.c_void_p]
        lib.g_main_loop_run.restype = None
        lib.g_main_loop_quit.argtypes = [ctypes.c_void_p]
        lib.g_main_loop_quit.restype = None
        lib.g_main_loop_unref.argtypes = [ctypes.c_void_p]
        lib.g_main_loop_unref.restype = None
        lib.g_main_loop_is_running.argtypes = [ctypes.c_void_p]
        lib.g_main_loop_is_running.restype = ctypes.c_int
        self.lib = lib


class _Pump:
    """The shared GLib thread (reference counted)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[int] = None
        self._glib: Optional[_GLib] = None
        self._mainloop: Any = None

    def mainloop(self) -> Any:
        """dbus-python's ``DBusGMainLoop`` (one per process), created on first use."""
        with self._lock:
            if self._mainloop is None:
                require("dbus", "victron")
                glib_mod = require("dbus.mainloop.glib", "victron")
                glib_mod.threads_init()
                self._mainloop = glib_mod.DBusGMainLoop(set_as_default=False)
            return self._mainloop

    @property
    def thread(self) -> Optional[threading.Thread]:
        return self._thread

    def acquire(self) -> None:
        """One more link needs the pump; start the thread if it is not running."""
        self.mainloop()
        with self._lock:
            self._users += 1
            if self._thread is not None:
                return
            if self._glib is None:
                self._glib = _GLib()
            lib = self._glib.lib
            loop = lib.g_main_loop_new(None, 0)
            self._loop = loop
            started = threading.Event()

            def run() -> None:
                started.set()
                lib.g_main_loop_run(loop)

            self._thread = threading.Thread(target=run, name=PUMP_THREAD_NAME, daemon=True)
            self._thread.start()
            started.wait(5)

    def release(self, timeout: float = 2.0) -> None:
        """One link fewer; the last one stops and joins the thread (never the current one)."""
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._thread is None:
                return
            thread, loop, lib = self._thread, self._loop, self._glib.lib  # type: ignore
            self._thread = None
            self._loop = None
            # g_main_loop_quit before run() began would be lost: wait until it is running.
            for _ in range(200):
                if lib.g_main_loop_is_running(loop):
                    break
                threading.Event().wait(0.005)
            lib.g_main_loop_quit(loop)
        if thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning("%s did not stop within %s s", PUMP_THREAD_NAME, timeout)
                return
        lib.g_main_loop_unref(loop)

    def in_pump(self) -> bool:
        return self._thread is not None and self._thread is threading.current_thread()


PUMP = _Pump()


def open_connection(address: str) -> Any:
    """A new *private* bus connection attached to the pump (blocking Hello; fast locally).

    Never the process-wide ``dbus.SessionBus()``/``SystemBus()`` singletons: closing this one
    affects nobody else. The connection does not exit the process when the bus goes away.
    """
    bindings = require("_dbus_bindings", "victron")
    conn = bindings.Connection._new_for_bus(address, mainloop=PUMP.mainloop())
    conn.set_exit_on_disconnect(False)
    return conn


def message_kind(msg: Any) -> int:
    return msg.get_type()


METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4


def is_disconnect(msg: Any) -> bool:
    return (msg.get_type() == SIGNAL and msg.get_member() == "Disconnected"
            and msg.get_interface() == "org.freedesktop.DBus.Local")


Handler = Callable[[Any], Any]
