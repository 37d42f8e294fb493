"""The D-Bus transport: one shared GLib pump thread and private bus connections.

dbus-python dispatches incoming messages (method calls to exported objects, signals, replies)
only through a main-loop integration, and the only one it ships (``DBusGMainLoop``, inside
dbus-python's own C extension) attaches every connection to GLib's process-wide *default*
context. One thread per process can iterate that context, so this module keeps exactly one
pump thread, ``pyburnerkit-victron-glib``, started when the first link opens and stopped when
the last one closes (reference counted: no thread outlives the last client).

The pump never runs user code and takes no lock anyone holds for long (only its own queue
lock, around a deque operation): the handlers it calls only hand each message to the owning
session's I/O thread (``call_soon_threadsafe``). Sending is done on the pump too: sessions
:meth:`_Pump.post` their messages, so one thread owns every connection (created, used,
closed and freed there: see :class:`_Connections`).

GLib is driven through ``ctypes`` (``libglib-2.0.so.0``): four functions, no PyGObject. The
reasons are in ``docs/victron.rst``.
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import ctypes.util
import logging
import os
import re
import sys
import threading
from typing import Any, Callable, Dict, List, Optional

from .._core.endpoint import Endpoint, parse_endpoint
from .._core.extras import require
from ..errors import BackendUnavailableError, ConfigurationError

log = logging.getLogger(__name__)

SYSTEM_BUS_DEFAULT = "unix:path=/var/run/dbus/system_bus_socket"
PUMP_THREAD_NAME = "pyburnerkit-victron-glib"


#: The well-known buses an endpoint may name instead of an address.
BUS_NAMES = ("system", "session")

# One D-Bus server address: ``transport:key=value[,key=value...]`` (the D-Bus specification's
# grammar; several may be joined with ``;``).
_ADDRESS = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:[A-Za-z0-9_-]+=[^,;]*(,[A-Za-z0-9_-]+=[^,;]*)*$")

#: The endpoint forms, for error messages and docs.
ENDPOINT_FORMS = ("'system', 'session', a D-Bus address such as "
                  "'unix:path=/run/dbus/system_bus_socket' or 'tcp:host=10.0.0.2,port=78', "
                  "or 'sim://[?interval=1&seed=0&demo=1]'")


def parse_bus_endpoint(endpoint: str) -> Endpoint:
    """Parse a Victron endpoint with the one endpoint parser (scheme ``dbus``, addresses passed
    through whole). No I/O and no environment lookup.

    :returns: an :class:`Endpoint` whose ``host`` is ``"system"``/``"session"`` or the whole
        D-Bus address, or a ``sim://`` endpoint (``is_sim``).
    :raises ConfigurationError: anything else (``"localhost"``, ``"host:port"``, an unknown
        scheme), naming the string and the accepted forms.
    """
    try:
        parsed = parse_endpoint(endpoint, scheme="dbus", opaque=True, what="D-Bus")
    except ConfigurationError as exc:
        raise ConfigurationError(f"{endpoint!r} is not a D-Bus endpoint: expected "
                                 f"{ENDPOINT_FORMS}") from exc
    if parsed.is_sim:
        return parsed
    if parsed.host == parsed.text and all(_ADDRESS.match(part)
                                          for part in parsed.text.rstrip(";").split(";")):
        return parsed   # a D-Bus address, passed through whole by the parser
    if (parsed.host in BUS_NAMES and parsed.port is None and parsed.path in ("", "/")
            and not parsed.options):
        return parsed
    raise ConfigurationError(f"{endpoint!r} is not a D-Bus endpoint (a bus is not reached by "
                             f"host name): expected {ENDPOINT_FORMS}")


def resolve_bus_address(endpoint: Optional[str] = None) -> str:
    """The bus address to connect to, as Venus picks it (reads the environment, no I/O).

    An address is used as given; ``"system"``/``"session"`` name a bus; None means the
    session bus when ``DBUS_SESSION_BUS_ADDRESS`` is set, else the system bus.

    :raises ConfigurationError: not a D-Bus endpoint (see :func:`parse_bus_endpoint`),
        ``"sim://"`` (it has no address until its simulator runs), or ``"session"`` while
        ``DBUS_SESSION_BUS_ADDRESS`` is unset.
    """
    if endpoint is None:
        session = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
        if session:
            return session
        return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", SYSTEM_BUS_DEFAULT)
    parsed = parse_bus_endpoint(endpoint)
    if parsed.is_sim:
        raise ConfigurationError(f"{endpoint!r} names the in-process simulator, which has no "
                                 f"address before it runs")
    if parsed.host == "system":
        return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", SYSTEM_BUS_DEFAULT)
    if parsed.host == "session":
        addr = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
        if not addr:
            raise ConfigurationError("the 'session' bus was asked for but "
                                     "DBUS_SESSION_BUS_ADDRESS is not set")
        return addr
    return parsed.host


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
        self.source_func = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
        lib.g_idle_add.argtypes = [self.source_func, ctypes.c_void_p]
        lib.g_idle_add.restype = ctypes.c_uint
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
        self._calls: Dict[int, Any] = {}
        self._call_seq = 0
        # post(): work queued for the pump, drained by one persistent idle callback.
        self._posted: "collections.deque[Callable[[], Any]]" = collections.deque()
        self._post_lock = threading.Lock()
        self._post_scheduled = False
        self._post_cb: Any = None
        # after_dispatch(): pump thread only, so no lock.
        self._after: List[Callable[[], Any]] = []
        self._after_cb: Any = None

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
                lib.g_main_loop_unref(loop)

            self._thread = threading.Thread(target=run, name=PUMP_THREAD_NAME, daemon=True)
            self._thread.start()
            started.wait(5)

    def release(self, timeout: float = 2.0) -> None:
        """One link fewer; the last one stops and joins the thread (never the current one)."""
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._thread is None:
                return
            glib = self._glib
            assert glib is not None  # acquire() made it before it started the thread
            thread, loop, lib = self._thread, self._loop, glib.lib
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
            with self._post_lock:
                # Left over: sends for connections that are all closed now. A still pending
                # idle source finds the queue empty when a later pump runs it.
                self._posted.clear()
                self._post_scheduled = False

    def run_in_pump(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn()`` on the pump thread, wait for it and return its result (or raise its
        exception); inline when already on the pump or when no pump runs.

        Connections are created and closed here: dbus-gmain attaching a new connection to the
        default context while the pump iterates it from another thread aborted the process
        (seen under load), and closing one while the pump dispatches its messages is a
        use-after-free in dbus-python.

        :raises TimeoutError: the pump did not run it within ``timeout`` seconds.
        """
        with self._lock:
            running = self._thread is not None and self._glib is not None
        if not running or self.in_pump():
            return fn()
        done = threading.Event()
        glib = self._glib
        assert glib is not None
        box: List[Any] = [None, None]
        with self._lock:
            self._call_seq += 1
            key = self._call_seq

        # pending -> running, or pending -> cancelled (the caller gave up): a late run of a
        # cancelled call does nothing, so a connection is never opened for nobody.
        state = ["pending"]
        state_lock = threading.Lock()

        def trampoline(_data: Any) -> int:
            try:
                with state_lock:
                    if state[0] == "cancelled":
                        return 0
                    state[0] = "running"
                try:
                    box[0] = fn()
                except BaseException as exc:
                    box[1] = exc
            finally:
                self._calls.pop(key, None)
                done.set()
            return 0  # G_SOURCE_REMOVE

        callback = glib.source_func(trampoline)
        self._calls[key] = callback  # keep it alive until it ran
        glib.lib.g_idle_add(callback, None)
        if not done.wait(timeout):
            with state_lock:
                cancelled = state[0] == "pending"
                if cancelled:
                    state[0] = "cancelled"
            # Already running: it is local work (at most a blocking Hello), let it finish.
            if cancelled or not done.wait(30.0):
                raise TimeoutError(f"the D-Bus pump did not answer within {timeout:g} s")
        if box[1] is not None:
            raise box[1]
        return box[0]

    def post(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` on the pump thread soon, in posting order, without waiting for it
        (inline when already on the pump or when no pump runs). ``fn`` must not raise: an
        exception is logged and dropped.

        This is how sessions send: every message goes out from the pump thread, the one
        thread that owns the connections (spec 6.6 #4).
        """
        with self._lock:
            running = self._thread is not None and self._glib is not None
            glib = self._glib
        if not running or self.in_pump():
            self._run_posted(fn)
            return
        assert glib is not None
        with self._post_lock:
            self._posted.append(fn)
            if self._post_scheduled:
                return
            self._post_scheduled = True
            if self._post_cb is None:
                self._post_cb = glib.source_func(self._drain_posted)
            callback = self._post_cb
        glib.lib.g_idle_add(callback, None)

    def _drain_posted(self, _data: Any) -> int:
        while True:
            with self._post_lock:
                if not self._posted:
                    self._post_scheduled = False
                    return 0  # G_SOURCE_REMOVE; the next post adds it again
                fn = self._posted.popleft()
            self._run_posted(fn)

    @staticmethod
    def _run_posted(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:
            log.exception("work posted to the D-Bus pump failed")

    def call_when_idle(self, fn: Callable[[], Any]) -> bool:
        """Run ``fn()`` on the pump from a new GLib idle source, so after everything of higher
        priority that is ready now (from any thread, the pump included). ``fn`` must not
        raise: an exception is logged and dropped.

        :returns: False (and ``fn`` never runs) when no pump is running.
        """
        with self._lock:
            glib = self._glib if self._thread is not None else None
            self._call_seq += 1
            key = self._call_seq
        if glib is None:
            return False

        def trampoline(_data: Any) -> int:
            try:
                fn()
            except Exception:
                log.exception("idle work on the D-Bus pump failed")
            finally:
                self._calls.pop(key, None)
            return 0  # G_SOURCE_REMOVE
        callback = glib.source_func(trampoline)
        self._calls[key] = callback  # keep it alive until it ran
        glib.lib.g_idle_add(callback, None)
        return True

    def in_pump(self) -> bool:
        return self._thread is not None and self._thread is threading.current_thread()

    def after_dispatch(self, fn: Callable[[], Any]) -> None:
        """Pump thread only: run ``fn()`` once the pump has dispatched the messages that are
        ready now (from a GLib idle source, which runs after every ready source of default
        priority, the connections' among them). ``fn`` must not raise: an exception is logged
        and dropped.

        Work handed on per message (waking a session's I/O thread) is then done once per
        burst of messages. Under a flood the idle source may wait as long as messages keep
        arriving, so a caller must also bound what it defers (see
        ``_BusSession._enqueue``).
        """
        glib = self._glib
        if glib is None:  # pragma: no cover - a pump thread implies its GLib
            fn()
            return
        self._after.append(fn)
        if len(self._after) == 1:
            if self._after_cb is None:
                self._after_cb = glib.source_func(self._run_after_dispatch)
            glib.lib.g_idle_add(self._after_cb, None)

    def _run_after_dispatch(self, _data: Any) -> int:
        due, self._after = self._after, []
        for fn in due:
            self._run_posted(fn)
        return 0  # G_SOURCE_REMOVE; the next after_dispatch() adds it again


PUMP = _Pump()


class _Connections:
    """Every connection this process opened, owned by the pump thread from birth to death.

    Why: dbus-python frees the libdbus connection when its Python object dies, on whatever
    thread drops the last reference. If that is not the pump thread, or the pump still has
    something to dispatch for it (a queued reply, the ``Disconnected`` signal, a completion
    for a pending call), GLib's dispatch then runs on freed memory: a segfault or a corrupted
    heap (seen within a few hundred connect/close cycles with traffic in flight). The first
    fix kept every closed connection referenced for ever, which cost about 8 KiB per connect
    or reconnect.

    Now a strong reference is held here from :func:`open_connection` until the connection is
    provably idle, and the last reference is always dropped *by the pump thread, between two
    dispatches*: a closed connection is "retired" and freed by :meth:`sweep` once nothing but
    this list refers to it (the reply handlers of its pending calls, messages posted to the
    pump, and the sessions' queued work all hold references, so a reference count of one
    means no dispatch can reach it any more). Sweeps run from a pump idle callback, which GLib
    only dispatches when no source of higher priority, such as a connection's message queue,
    is ready. What is still referenced waits for the next sweep (after the next open or
    close), so the list stays as short as the number of connections still in use.
    """

    def __init__(self) -> None:
        self.live: Dict[int, Any] = {}
        self.retired: List[Any] = []
        self.sweep_scheduled = False

    def retire(self, conn: Any) -> None:
        """Pump thread: ``conn`` is closed; free it as soon as nothing refers to it."""
        if self.live.pop(id(conn), None) is not None:
            self.retired.append(conn)

    def sweep(self) -> int:
        """Pump thread, outside any dispatch: drop the retired connections nobody else
        refers to (their Python objects, and then libdbus's, are freed right here).

        :returns: how many are still waiting.
        """
        kept = []
        while self.retired:
            conn = self.retired.pop()
            # Two references mean ours only: the local name and getrefcount's argument.
            if sys.getrefcount(conn) > 2:
                kept.append(conn)
            del conn
        self.retired = kept
        return len(kept)


_CONNECTIONS = _Connections()


@atexit.register
def _pin_connections_at_exit() -> None:
    """At interpreter exit module globals are torn down on the main thread, which would free
    the connections still held here while a daemon pump may iterate GLib: keep them instead
    (the process is ending; nothing is lost)."""
    for conn in list(_CONNECTIONS.live.values()) + list(_CONNECTIONS.retired):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(conn))


def retired_connections() -> int:
    """How many closed connections still wait to be freed (for tests and diagnostics)."""
    return len(_CONNECTIONS.retired)


def _schedule_sweep() -> None:
    """Pump thread: sweep once GLib has dispatched what is ready now (an idle callback runs
    only when no default-priority source, such as a connection's message queue, is ready)."""
    if _CONNECTIONS.sweep_scheduled:
        return
    _CONNECTIONS.sweep_scheduled = True

    def sweep() -> None:
        _CONNECTIONS.sweep_scheduled = False
        _CONNECTIONS.sweep()
    if not PUMP.call_when_idle(sweep):
        _CONNECTIONS.sweep_scheduled = False


def open_connection(address: str, setup: Optional[Callable[[Any], Any]] = None) -> Any:
    """A new *private* bus connection attached to the pump (blocking Hello; fast locally).

    Created on the pump thread (see :meth:`_Pump.run_in_pump`), where ``setup(conn)`` also
    runs (add filters, export objects) before any message of it can be dispatched.
    Never the process-wide ``dbus.SessionBus()``/``SystemBus()`` singletons: closing this one
    affects nobody else. The connection does not exit the process when the bus goes away.
    Close it with :func:`close_connection` (never let it be garbage-collected: see
    :class:`_Connections`).
    """
    bindings = require("_dbus_bindings", "victron")
    mainloop = PUMP.mainloop()

    def create() -> Any:
        _CONNECTIONS.sweep()
        conn = bindings.Connection._new_for_bus(address, mainloop=mainloop)
        _CONNECTIONS.live[id(conn)] = conn
        try:
            conn.set_exit_on_disconnect(False)
            if setup is not None:
                setup(conn)
        except BaseException:
            _close_on_pump(conn, None)
            raise
        return conn
    return PUMP.run_in_pump(create)


def _close_on_pump(conn: Any, cleanup: Optional[Callable[[], Any]]) -> None:
    try:
        if cleanup is not None:
            cleanup()
    except Exception:
        log.debug("cleaning up a bus connection failed", exc_info=True)
    try:
        conn.close()
    except Exception:
        log.debug("closing a bus connection failed", exc_info=True)
    _CONNECTIONS.retire(conn)
    _CONNECTIONS.sweep()
    _schedule_sweep()


def close_connection(conn: Any, cleanup: Optional[Callable[[], Any]] = None) -> None:
    """Close a connection on the pump thread (see :meth:`_Pump.run_in_pump`); ``cleanup``
    runs there first (remove filters and exports, so nothing of ours is called for it again).
    The connection is freed later, on the pump, once nothing refers to it (:class:`_Connections`).
    """
    try:
        PUMP.run_in_pump(lambda: _close_on_pump(conn, cleanup))
    except TimeoutError:
        log.warning("the D-Bus pump did not close a connection in time")


METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4


def is_disconnect(msg: Any) -> bool:
    return bool(msg.get_type() == SIGNAL and msg.get_member() == "Disconnected"
                and msg.get_interface() == "org.freedesktop.DBus.Local")


Handler = Callable[[Any], Any]
