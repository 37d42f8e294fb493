"""A simulated Venus OS bus: a private ``dbus-daemon``, a fake localsettings, demo services.

``VictronSim`` starts its own ``dbus-daemon`` (a session-type bus on a fixed unix socket in a
temporary directory, so :meth:`VictronSim.restart` brings it back on the same address), and
exports on it, each on its own connection:

* ``com.victronenergy.settings``: localsettings as spec section 3 describes it (AddSettings,
  RemoveSettings, legacy AddSetting/AddSilentSetting, limits, error codes -2..-9, one
  PropertiesChanged per setting and never ItemsChanged, ClassAndVrmInstance allocation,
  GetItems only on ``/`` with Min/Max/Default);
* demo services whose values move: ``com.victronenergy.battery.sim``,
  ``com.victronenergy.solarcharger.sim`` (``/Mode`` is writable: 1 on, 4 off) and
  ``com.victronenergy.grid.sim``; they behave like velib services (GetItems, root dicts,
  SetValue codes 0/1, ItemsChanged).

Everything the simulated services decide runs on one thread, ``pyburnerkit-sim-victron``; the
shared GLib pump hands messages to it and sends its replies and signals. Fault injection: :meth:`hold_replies`,
:meth:`silence`, :meth:`drop` (the daemon dies and comes back: every connection drops).
"""

from __future__ import annotations

import logging
import math
import os
import random
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar

from .._core.extras import require
from .._core.loop import EventLoop
from .._core.endpoint import flag, sim_options
from ..errors import (BackendUnavailableError, ConfigurationError, DeviceConnectionError,
                      check_range)
from . import codec
from .bus import METHOD_CALL, PUMP, SIGNAL, close_connection, is_disconnect, open_connection

log = logging.getLogger(__name__)

T = TypeVar("T")

_UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
_UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={path}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def find_dbus_daemon() -> str:
    path = shutil.which("dbus-daemon")
    if path is None:
        raise BackendUnavailableError(
            "victron", "dbus-daemon",
            reason="the dbus-daemon program is missing; install the system package 'dbus' "
                   "(apt-get install dbus)")
    return path


class DbusDaemon:
    """A private ``dbus-daemon`` on a fixed socket path (restartable on the same address)."""

    def __init__(self, directory: Optional[str] = None) -> None:
        self._own_dir = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="pbk-victron-")
        self.socket_path = os.path.join(self.directory, "bus")
        self.address = f"unix:path={self.socket_path}"
        self.config = os.path.join(self.directory, "bus.conf")
        with open(self.config, "w") as fh:
            fh.write(_CONFIG.format(path=self.socket_path))
        self.proc: Optional["subprocess.Popen[bytes]"] = None

    def start(self, timeout: float = 10.0) -> str:
        exe = find_dbus_daemon()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.proc = subprocess.Popen(
            [exe, f"--config-file={self.config}", "--nofork", "--nopidfile",
             "--print-address=1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        line = self._read_address(self.proc.stdout, timeout)  # printed once it listens
        self.proc.stdout.close()
        if not line:
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.stop()
                raise DeviceConnectionError(
                    f"dbus-daemon did not print its address within {timeout:g} s") from None
            raise DeviceConnectionError(f"dbus-daemon exited with {code} before listening")
        return self.address

    @staticmethod
    def _read_address(stream: Any, timeout: float) -> str:
        """The first line the daemon prints, or '' at EOF or after ``timeout`` seconds."""
        fd = stream.fileno()
        data = b""
        end = time.monotonic() + timeout
        while b"\n" not in data:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return ""
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace").strip()

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


# ====================================================================== exported objects
class _Exported:
    """One bus name on its own connection, served on the simulator's thread."""

    def __init__(self, sim: "VictronSim", name: str) -> None:
        self.sim = sim
        self.name = name
        self.conn: Any = None
        self._filter: Any = None

    def connect(self) -> None:
        loop = self.sim.loop
        low = require("dbus.lowlevel", "victron")

        def on_object(c: Any, msg: Any) -> Any:  # pump thread: enqueue only
            if msg.get_type() != METHOD_CALL:
                return low.HANDLER_RESULT_NOT_YET_HANDLED
            loop.call_soon_threadsafe(self.sim._incoming, self, c, msg)
            return low.HANDLER_RESULT_HANDLED

        def on_filter(c: Any, msg: Any) -> Any:
            if msg.get_type() == SIGNAL and is_disconnect(msg):
                loop.call_soon_threadsafe(self._lost, c)
            return low.HANDLER_RESULT_NOT_YET_HANDLED

        def setup(c: Any) -> None:
            c.add_message_filter(on_filter)
            c._register_object_path("/", on_object, None, True)
        self._filter = on_filter
        conn = open_connection(self.sim.address, setup)
        # RequestName's answer comes from the daemon: a blocking call on the pump (which
        # owns the connection) cannot deadlock.
        reply = PUMP.run_in_pump(
            lambda: conn.send_message_with_reply_and_block(self._request_name(low), 5.0))
        code = int(reply.get_args_list()[0])
        if code not in (1, 4):
            self._close(conn)
            raise DeviceConnectionError(f"simulator: {self.name} is taken (code {code})")
        self.conn = conn

    def _request_name(self, low: Any) -> Any:
        msg = low.MethodCallMessage(codec.DBUS_NAME, codec.DBUS_PATH, codec.DBUS_NAME,
                                    "RequestName")
        msg.append(self.name, 4, signature="su")
        return msg

    def _lost(self, conn: Any) -> None:
        if conn is self.conn:
            self.conn = None
            self._close(conn)

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self._close(conn)

    def _close(self, conn: Any) -> None:
        on_filter = self._filter

        def cleanup() -> None:  # nothing of ours may be called for a connection being freed
            conn.remove_message_filter(on_filter)
            conn._unregister_object_path("/")
        close_connection(conn, cleanup)

    # -- sending (built on the sim thread, sent by the pump, which owns the connection) --
    def _send(self, msg: Any) -> None:
        conn = self.conn
        if conn is None:
            return

        def go() -> None:
            try:
                conn.send_message(msg)
            except Exception:
                log.debug("simulator: sending on a closed connection", exc_info=True)
        PUMP.post(go)

    def reply(self, call: Any, signature: str = "", *args: Any) -> None:
        if self.conn is None or call.get_no_reply():
            return
        msg = require("dbus.lowlevel", "victron").MethodReturnMessage(call)
        if signature:
            msg.append(*args, signature=signature)
        self._send(msg)

    def error(self, call: Any, name: str, text: str) -> None:
        if self.conn is None or call.get_no_reply():
            return
        self._send(require("dbus.lowlevel", "victron").ErrorMessage(call, name, text))

    def signal(self, path: str, member: str, signature: str, payload: Any) -> None:
        if self.conn is None:
            return
        msg = require("dbus.lowlevel", "victron").SignalMessage(path, codec.BUSITEM, member)
        msg.append(payload, signature=signature)
        self._send(msg)

    def handle(self, msg: Any) -> None:
        raise NotImplementedError


class SimService(_Exported):
    """A velib-like service: items, GetItems, root/tree dicts, SetValue 0/1, ItemsChanged."""

    def __init__(self, sim: "VictronSim", name: str, values: Dict[str, Any],
                 writable: Tuple[str, ...] = ()) -> None:
        super().__init__(sim, name)
        self.values = dict(values)
        self.writable = set(writable)
        self.set_calls: Dict[str, int] = {}

    def text(self, path: str, value: Any) -> str:
        return codec.default_text(path, value)

    def update(self, changes: Dict[str, Any]) -> None:
        """Change values locally and send one ItemsChanged with the ones that changed."""
        changed = {p: v for p, v in changes.items() if self.values.get(p) != v
                   or type(self.values.get(p)) is not type(v)}
        self.values.update(changed)
        if changed:
            self.signal("/", "ItemsChanged", "a{sa{sv}}", codec.items_dict(
                (p, v, self.text(p, v)) for p, v in changed.items()))

    def handle(self, msg: Any) -> None:
        path, member = msg.get_path(), msg.get_member()
        if member == "GetItems" and path == "/":
            self.reply(msg, "a{sa{sv}}", codec.items_dict(
                (p, v, self.text(p, v)) for p, v in self.values.items()))
        elif path in self.values:
            value = self.values[path]
            if member == "GetValue":
                self.reply(msg, "v", codec.wrap(value, 1))
            elif member == "GetText":
                self.reply(msg, "s", self.text(path, value))
            elif member == "SetValue":
                new = codec.unwrap(msg.get_args_list()[0])
                if path not in self.writable:
                    self.reply(msg, "i", 1)
                    return
                if isinstance(value, int) and not isinstance(new, int):
                    try:
                        new = int(new)  # velib's valuetype coercion (2.7 -> 2)
                    except (TypeError, ValueError):
                        self.reply(msg, "i", 1)
                        return
                if new != value:
                    self.update({path: new})
                self.reply(msg, "i", 0)
            else:
                self.error(msg, _UNKNOWN_METHOD, f"{member} on {path}")
        elif member in ("GetValue", "GetText") and any(codec.under(p, path) for p in self.values):
            text = member == "GetText"
            tree = {codec.relative(p, path): (self.text(p, v) if text else v)
                    for p, v in self.values.items() if codec.under(p, path)}
            self.reply(msg, "v", codec.wrap(tree, 1))
        else:
            self.error(msg, _UNKNOWN_OBJECT, f"no object {path}")


class _Setting:
    __slots__ = ("kind", "value", "default", "min", "max", "silent")

    def __init__(self, kind: str, value: Any, default: Any, lo: Any, hi: Any,
                 silent: bool) -> None:
        self.kind, self.value, self.default = kind, value, default
        self.min, self.max, self.silent = lo, hi, silent

    def limited(self) -> bool:
        return self.kind != "s" and not (self.min == 0 and self.max == 0)


class SimSettings(_Exported):
    """The fake localsettings (spec section 3)."""

    GROUPS = ("/Settings", "/Settings/Devices")
    SECURITY_PROFILE = "/Settings/System/SecurityProfile"

    def __init__(self, sim: "VictronSim") -> None:
        super().__init__(sim, codec.SETTINGS_SERVICE)
        self.settings: Dict[str, _Setting] = {}

    # -- structure ---------------------------------------------------------------------
    def is_group(self, path: str) -> bool:
        if path in ("/",) + self.GROUPS:
            return True
        return any(codec.under(p, path) for p in self.settings)

    def _props(self, path: str, st: _Setting, attrs: bool) -> Any:
        dbus = require("dbus", "victron")
        d = {"Value": codec.wrap(st.value, 1),
             "Text": dbus.String(str(st.value), variant_level=1)}
        if attrs:
            d["Default"] = codec.wrap(st.default, 1)
            if st.kind != "s":
                d["Min"] = codec.wrap(st.min, 1)
                d["Max"] = codec.wrap(st.max, 1)
        return dbus.Dictionary(d, signature="sv")

    def _changed(self, path: str, st: _Setting, attrs: bool = False) -> None:
        self.signal(path, "PropertiesChanged", "a{sv}", self._props(path, st, attrs))

    # -- the methods -------------------------------------------------------------------
    def handle(self, msg: Any) -> None:
        path, member = msg.get_path(), msg.get_member()
        args = msg.get_args_list()
        st = self.settings.get(path)
        if st is not None:
            self._on_setting(msg, path, st, member, args)
            return
        if not self.is_group(path):
            self.error(msg, _UNKNOWN_OBJECT, f"no object {path}")
            return
        if member == "AddSettings":
            self.reply(msg, "aa{sv}", self.add_settings(path, args[0]))
        elif member in ("AddSetting", "AddSilentSetting"):
            self.reply(msg, "i", self.add_setting(path, *args[:6],
                                                  silent=member == "AddSilentSetting"))
        elif member == "RemoveSettings":
            self.reply(msg, "ai", require("dbus", "victron").Array(
                [self.remove(path, str(p)) for p in args[0]], signature="i"))
        elif member == "GetItems" and path == "/":
            dbus = require("dbus", "victron")
            self.reply(msg, "a{sa{sv}}", dbus.Dictionary(
                {p: self._props(p, s, True) for p, s in self.settings.items()},
                signature="sa{sv}"))
        elif member in ("GetValue", "GetText"):
            text = member == "GetText"
            tree = {codec.relative(p, path): (str(s.value) if text else s.value)
                    for p, s in self.settings.items() if codec.under(p, path)}
            self.reply(msg, "v", codec.wrap(tree, 1))
        else:
            self.error(msg, _UNKNOWN_METHOD, f"{member} is not supported on {path}")

    def _on_setting(self, msg: Any, path: str, st: _Setting, member: str,
                    args: List[Any]) -> None:
        if member == "GetValue":
            self.reply(msg, "v", codec.wrap(st.value, 1))
        elif member == "GetText":
            self.reply(msg, "s", str(st.value))
        elif member in ("GetMin", "GetMax"):
            limit = st.min if member == "GetMin" else st.max
            self.reply(msg, "v", codec.wrap(0 if st.kind == "s" or limit is None else limit, 1))
        elif member == "GetDefault":
            self.reply(msg, "v", codec.wrap(st.default, 1))
        elif member == "GetSilent":
            self.reply(msg, "b", bool(st.silent))
        elif member == "GetAttributes":
            self.reply(msg, "vvvi", codec.wrap(st.default, 1), codec.wrap(st.min or 0, 1),
                       codec.wrap(st.max or 0, 1), int(bool(st.silent)))
        elif member == "SetDefault":
            if path.endswith("/ClassAndVrmInstance"):
                # localsettings' override means to return -1 but does not accept the sender
                # keyword dbus-python passes, so the caller gets this error reply (spec 2.4).
                self.error(msg, "org.freedesktop.DBus.Python.TypeError",
                           "TypeError: SetDefault() got an unexpected keyword argument "
                           "'sender'")
                return
            code = self.set_value(path, st, st.default)
            self.reply(msg, "i", code)
        elif member == "SetValue":
            self.sim.settings_writes += 1
            if path == self.SECURITY_PROFILE:
                # Only the venus-platform process may change it (localsettings checks the
                # caller's pid); no caller here is that process.
                self.reply(msg, "i", -1)
                return
            self.reply(msg, "i", self.set_value(path, st, codec.unwrap(args[0])))
        else:
            self.error(msg, _UNKNOWN_METHOD, f"{member} is not supported on {path}")

    def set_value(self, path: str, st: _Setting, value: Any) -> int:
        value = self._coerce(st.kind, value)
        if value is None:
            return -1
        if st.limited() and not st.min <= value <= st.max:
            return -1
        if path.endswith("/ClassAndVrmInstance"):
            try:
                cls, inst = codec.parse_class_instance(value)
            except Exception:
                return -1
            value = f"{cls}:{self._free_instance(cls, inst, path)}"
        if value == st.value:
            return 0
        st.value = value
        self._changed(path, st)
        return 0

    @staticmethod
    def _coerce(kind: str, value: Any) -> Any:
        if kind == "s":
            return value if isinstance(value, str) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if kind == "i":
            return int(value) if float(value).is_integer() else None
        return float(value)

    def _free_instance(self, cls: str, preferred: int, own_path: str) -> int:
        taken = set()
        for p, s in self.settings.items():
            if p != own_path and p.endswith("/ClassAndVrmInstance"):
                try:
                    c, i = codec.parse_class_instance(s.value)
                except Exception:
                    continue
                if c == cls:
                    taken.add(i)
        inst = preferred
        while inst in taken:
            inst += 1
        return inst

    def _absolute(self, base: str, path: str) -> str:
        if base == "/":
            return path if path.startswith("/") else "/" + path
        return base + "/" + path.lstrip("/")

    def add_settings(self, base: str, entries: Any) -> Any:
        dbus = require("dbus", "victron")
        out = []
        for entry in entries:
            raw_path = entry.get("path")
            if not isinstance(raw_path, (str, dbus.String)):
                out.append(dbus.Dictionary({"error": dbus.Int32(-4, variant_level=1)},
                                           signature="sv"))
                continue
            path = self._absolute(base, str(raw_path))
            code, value = self._add(path, entry.get("default"), entry.get("min"),
                                    entry.get("max"), bool(entry.get("silent", False)))
            d = {"error": dbus.Int32(code, variant_level=1),
                 "path": dbus.String(raw_path, variant_level=1)}
            if code == 0:
                d["value"] = codec.wrap(value, 1)
            out.append(dbus.Dictionary(d, signature="sv"))
        return dbus.Array(out, signature="a{sv}")

    def _kind(self, default: Any) -> Optional[str]:
        dbus = require("dbus", "victron")
        if isinstance(default, dbus.Boolean):
            return None
        if isinstance(default, (dbus.Int32, dbus.Int64, dbus.Int16, dbus.UInt16, dbus.UInt32,
                                dbus.Byte)):
            return "i"
        if isinstance(default, dbus.Double):
            return "f"
        if isinstance(default, dbus.String):
            return "s"
        return None

    def _add(self, path: str, default: Any, lo: Any, hi: Any, silent: bool) -> Tuple[int, Any]:
        if not isinstance(path, str) or not path.startswith("/"):
            return -4, None
        if "/_" in path:
            return -2, None
        if not path.startswith("/Settings/"):
            return -9, None
        kind = self._kind(default)
        if kind is None:
            return -3, None
        if path in self.GROUPS or (path not in self.settings and self.is_group(path)):
            return -8, None
        value = codec.unwrap(default)
        lo_v = 0 if lo is None else codec.unwrap(lo)
        hi_v = 0 if hi is None else codec.unwrap(hi)
        if kind != "s":
            if not isinstance(lo_v, (int, float)) or not isinstance(hi_v, (int, float)):
                return -6, None
            if kind == "i":
                lo_v, hi_v = int(lo_v), int(hi_v)
            else:
                lo_v, hi_v, value = float(lo_v), float(hi_v), float(value)
            if not (lo_v == 0 and hi_v == 0) and not lo_v <= value <= hi_v:
                return -7, None
        if path.endswith("/ClassAndVrmInstance"):
            try:
                cls, inst = codec.parse_class_instance(value)
            except Exception:
                return -6, None
        existing = self.settings.get(path)
        if existing is not None:
            if existing.kind != kind:
                return -5, None
            if (existing.default, existing.min, existing.max) != (value, lo_v, hi_v):
                if not path.endswith("/ClassAndVrmInstance"):
                    existing.default, existing.min, existing.max = value, lo_v, hi_v
                    self._changed(path, existing, attrs=True)
            return 0, existing.value
        if path.endswith("/ClassAndVrmInstance"):
            value = f"{cls}:{self._free_instance(cls, inst, path)}"
        st = _Setting(kind, value, value, lo_v, hi_v, silent)
        self.settings[path] = st
        self._changed(path, st, attrs=True)
        return 0, value

    def add_setting(self, base: str, group: Any, name: Any, default: Any, kind: Any, lo: Any,
                    hi: Any, *, silent: bool = False) -> int:
        dbus = require("dbus", "victron")
        kind = str(kind)
        if kind not in ("i", "f", "s"):
            return -3
        raw = codec.unwrap(default)
        try:
            typed = {"i": lambda v: dbus.Int32(int(v)), "f": lambda v: dbus.Double(float(v)),
                     "s": lambda v: dbus.String(str(v))}[kind](raw)
        except (TypeError, ValueError):
            return -6
        path = self._absolute(base, f"{str(group).strip('/')}/{str(name).strip('/')}")
        code, _ = self._add(path, typed, lo, hi, silent)
        return code

    def remove(self, base: str, path: str) -> int:
        full = self._absolute(base, path)
        st = self.settings.get(full)
        if st is None:
            return -1
        dbus = require("dbus", "victron")
        self.signal(full, "PropertiesChanged", "a{sv}", dbus.Dictionary(
            {"Value": codec.wrap(None, 1), "Text": dbus.String("", variant_level=1)},
            signature="sv"))
        del self.settings[full]
        return 0


# ====================================================================== the simulator
class VictronSim:
    """A private Venus-like bus with localsettings and moving demo services.

    :param interval: seconds between demo value updates (0: values never move on their own;
        0..86400 s, else :class:`~pyburnerkit.errors.ConfigurationError`).
    :param seed: seeds the value noise.
    :param demo: also export the battery, solar charger and grid meter.
    """

    BATTERY = "com.victronenergy.battery.sim"
    SOLAR = "com.victronenergy.solarcharger.sim"
    GRID = "com.victronenergy.grid.sim"

    def __init__(self, *, interval: float = 1.0, seed: int = 0, demo: bool = True,
                 directory: Optional[str] = None) -> None:
        self.interval = float(check_range("interval", interval, 0, 86400, "s"))
        self.rng = random.Random(seed)
        self.daemon = DbusDaemon(directory)
        self.address = self.daemon.address
        self.loop: EventLoop = EventLoop()
        self.reply_delay = 0.0
        self.silent = False
        self.settings_writes = 0
        self._calls_received: Dict[Tuple[str, str], int] = {}
        self.settings = SimSettings(self)
        self.services: Dict[str, SimService] = {}
        if demo:
            self._add_demo()
        self._thread: Optional[threading.Thread] = None
        self._started = False
        self._closed = False
        self._tick_n = 0

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> "VictronSim":
        """Build from ``sim://`` endpoint options (``interval``, ``seed``, ``demo``)."""
        return cls(**cls.parse_options(options))

    @staticmethod
    def parse_options(options: Mapping[str, str]) -> Dict[str, Any]:
        """``sim://?interval=1&seed=0&demo=1`` options to constructor arguments (no I/O).

        :raises ConfigurationError: an unknown option or a value of the wrong kind.
        """
        def interval(seconds: float) -> float:  # refused here, before any client is built
            return float(check_range("sim:// option interval", seconds, 0, 86400, "s"))
        return sim_options(options, {"interval": float, "seed": int, "demo": flag},
                           limits={"interval": interval})

    # -- demo content ------------------------------------------------------------------
    def _mandatory(self, name: str, instance: int, product: str, pid: int) -> Dict[str, Any]:
        return {"/Mgmt/ProcessName": "pyburnerkit-sim", "/Mgmt/ProcessVersion": "1.0",
                "/Mgmt/Connection": "simulated", "/DeviceInstance": instance,
                "/ProductId": pid, "/ProductName": product, "/FirmwareVersion": 0x0401,
                "/HardwareVersion": 0, "/Connected": 1, "/CustomName": ""}

    def _add_demo(self) -> None:
        battery = self._mandatory(self.BATTERY, 512, "SmartShunt (sim)", 0xA389)
        battery.update({"/Soc": 80.0, "/Dc/0/Voltage": 52.8, "/Dc/0/Current": -5.0,
                        "/Dc/0/Power": -264.0, "/Dc/0/Temperature": 21.0,
                        "/ConsumedAmphours": -20.0, "/TimeToGo": 36000.0, "/Alarms/LowVoltage": 0})
        solar = self._mandatory(self.SOLAR, 278, "SmartSolar MPPT 150/35 (sim)", 0xA058)
        solar.update({"/Mode": 1, "/State": 3, "/Pv/V": 110.0, "/Yield/Power": 500.0,
                      "/Dc/0/Voltage": 52.9, "/Dc/0/Current": 9.4, "/Yield/User": 1234.5,
                      "/Link/ChargeVoltage": None})
        grid = self._mandatory(self.GRID, 30, "Grid meter (sim)", 0xB012)
        grid.update({"/Ac/Power": 1500.0, "/Ac/L1/Power": 1500.0, "/Ac/L1/Voltage": 230.0,
                     "/Ac/L1/Current": 6.5, "/Ac/Energy/Forward": 100.0,
                     "/Ac/Energy/Reverse": 10.0})
        self.services[self.BATTERY] = SimService(self, self.BATTERY, battery)
        self.services[self.SOLAR] = SimService(self, self.SOLAR, solar, writable=("/Mode",))
        self.services[self.GRID] = SimService(self, self.GRID, grid)

    def _tick(self) -> None:
        self._tick_n += 1
        rng, t = self.rng, self._tick_n
        bat = self.services.get(self.BATTERY)
        solar = self.services.get(self.SOLAR)
        grid = self.services.get(self.GRID)
        pv = 0.0
        if solar is not None:
            on = solar.values.get("/Mode") == 1
            pv = round(max(0.0, 500 + 300 * math.sin(t / 10) + rng.uniform(-20, 20)), 1) if on else 0.0
            solar.update({"/Yield/Power": pv, "/Dc/0/Current": round(pv / 52.9, 2),
                          "/State": 3 if on else 0, "/Pv/V": 110.0 if on else 0.0})
        if bat is not None:
            current = round(pv / 52.8 - 8.0 + rng.uniform(-0.5, 0.5), 2)
            soc = min(100.0, max(0.0, round(bat.values["/Soc"] + current * 0.01, 2)))
            volt = round(50.0 + soc * 0.04, 2)
            bat.update({"/Soc": soc, "/Dc/0/Current": current, "/Dc/0/Voltage": volt,
                        "/Dc/0/Power": round(volt * current, 1)})
        if grid is not None:
            power = round(1500 - pv + rng.uniform(-50, 50), 1)
            grid.update({"/Ac/Power": power, "/Ac/L1/Power": power,
                         "/Ac/L1/Current": round(power / 230.0, 2),
                         "/Ac/Energy/Forward": round(grid.values["/Ac/Energy/Forward"] +
                                                     max(power, 0) / 3.6e6, 4)})
        if self.interval > 0:
            self.loop.call_later(self.interval, self._tick)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "VictronSim":
        """Start the daemon, the simulator thread and every exported service."""
        if self._started:
            return self
        self._started = True
        self.daemon.start(timeout)
        PUMP.acquire()
        self._thread = threading.Thread(target=self.loop.run, name="pyburnerkit-sim-victron",
                                         daemon=True)
        self._thread.start()
        try:
            self.run_on_thread(self._connect_all, timeout=timeout)
        except BaseException:
            self.close()
            raise
        if self.interval > 0:
            self.loop.call_soon_threadsafe(
                lambda: self.loop.call_later(self.interval, self._tick))
        return self

    def _all(self) -> List[_Exported]:
        return [self.settings] + list(self.services.values())

    def _connect_all(self) -> None:
        for exported in self._all():
            if exported.conn is None:
                exported.connect()

    def _close_all(self) -> None:
        for exported in self._all():
            exported.close()

    def run_on_thread(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn()`` on the simulator thread and return its result (from another thread)."""
        done = threading.Event()
        box: List[Any] = [None, None]

        def run() -> None:
            try:
                box[0] = fn()
            except BaseException as exc:
                box[1] = exc
            finally:
                done.set()
        self.loop.call_soon_threadsafe(run)
        if not done.wait(timeout):
            raise TimeoutError("the simulator thread did not answer")
        if box[1] is not None:
            raise box[1]
        result: T = box[0]
        return result

    def close(self, timeout: Optional[float] = 5.0) -> None:
        """Stop everything the simulator started (idempotent). Blocks until its thread and
        its ``dbus-daemon`` have stopped, waiting at most about ``timeout`` seconds for each
        step (at least 0.5 s, so a spent deadline still ends the daemon process)."""
        if self._closed:
            return
        self._closed = True
        wait = 5.0 if timeout is None else min(5.0, max(0.5, timeout))
        if self._thread is not None:
            try:
                self.run_on_thread(self._close_all, timeout=wait)
            except Exception:
                log.debug("closing sim connections failed", exc_info=True)
            self.loop.stop()
            self._thread.join(wait)
            PUMP.release()
        self.loop.close()
        self.daemon.close()

    stop = close

    def __enter__(self) -> "VictronSim":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- incoming calls (sim thread) ---------------------------------------------------
    def _incoming(self, exported: _Exported, conn: Any, msg: Any) -> None:
        if conn is not exported.conn:
            return
        key = (exported.name, str(msg.get_member()))  # counted on receipt, held back or not
        self._calls_received[key] = self._calls_received.get(key, 0) + 1
        if isinstance(exported, SimService) and msg.get_member() == "SetValue":
            path = msg.get_path()  # counted on receipt, even when the reply is held back
            exported.set_calls[path] = exported.set_calls.get(path, 0) + 1
        if self.silent:
            return
        if self.reply_delay > 0:
            self.loop.call_later(self.reply_delay, self._handle, exported, conn, msg)
        else:
            self._handle(exported, conn, msg)

    def _handle(self, exported: _Exported, conn: Any, msg: Any) -> None:
        if conn is not exported.conn:
            return
        try:
            exported.handle(msg)
        except Exception as exc:
            log.exception("simulator: %s failed", msg.get_member())
            exported.error(msg, "org.freedesktop.DBus.Error.Failed", str(exc))

    # -- control (any thread) ----------------------------------------------------------
    def set_values(self, service: str, values: Dict[str, Any]) -> None:
        """Change demo values now (one ItemsChanged)."""
        self.run_on_thread(lambda: self.services[service].update(values))

    def value(self, service: str, path: str) -> Any:
        return self.run_on_thread(lambda: self.services[service].values.get(path))

    def calls(self, service: str, member: str) -> int:
        """How many ``member`` method calls ``service`` received (counted on receipt, also
        while replies are held back or silenced)."""
        return self.run_on_thread(lambda: self._calls_received.get((service, member), 0))

    def set_calls(self, service: str, path: str) -> int:
        return self.run_on_thread(lambda: self.services[service].set_calls.get(path, 0))

    def add_service(self, name: str, values: Dict[str, Any],
                    writable: Tuple[str, ...] = ()) -> SimService:
        """Export one more service (appears on the bus now)."""
        svc = SimService(self, name, values, writable)

        def go() -> SimService:
            svc.connect()
            self.services[name] = svc
            return svc
        return self.run_on_thread(go)

    def remove_service(self, name: str) -> None:
        """Take a service off the bus (its connection closes)."""
        def go() -> None:
            svc = self.services.pop(name)
            svc.close()
        self.run_on_thread(go)

    def hold_replies(self, seconds: float) -> None:
        self.reply_delay = max(0.0, float(seconds))

    def silence(self, on: bool) -> None:
        self.silent = bool(on)

    def restart(self, timeout: float = 10.0) -> None:
        """The daemon dies and comes back on the same address; the services re-register."""
        self.daemon.stop()  # first, so every connection drops at once
        self.run_on_thread(self._close_all, timeout=timeout)
        self.daemon.start(timeout)
        self.run_on_thread(self._connect_all, timeout=timeout)

    drop = restart
