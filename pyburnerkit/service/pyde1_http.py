"""pyDE1's inbound HTTP API (spec ``de1.md`` section 9) as a plain WSGI application over a
:class:`~pyburnerkit.de1.client.DE1Client` and a :class:`~pyburnerkit.scale.client.SkaleClient`.

A client written for pyDE1 works unchanged: the same paths (``/version``, ``/de1/state``,
``/de1/mode``, ``/de1/control/espresso``, ``/de1/setting/...``, ``/scale/tare``, ...), verbs,
JSON shapes and value types, status codes, the ``x-pyde1-timestamp`` header on every response,
PUT/PATCH success answered with a JSON list (usually ``[]``) and refusals answered in
``text/plain`` with pyDE1's ``ExceptionName('message')`` text.

Every change goes through the library's own clients: ``PATCH /de1/setting/fan_threshold``
is ``DE1Client.write_setting("fan_threshold", ...)``, ``PUT /de1/mode`` is
``DE1Client.request_mode(...)``, ``PUT /de1/profile`` is ``DE1Client.upload_profile(...)``,
``PATCH /scale/tare`` is ``SkaleClient.tare()``: their limits, write gating and confirmation
apply unchanged, and a refused request sends nothing. Profiles live where pyDE1 keeps them, in
a database: a :class:`~pyburnerkit.de1.library.ProfileLibrary` (pyDE1's ``profile`` table). The
stop-at controls (``/de1/control/espresso`` and friends) drive one
:class:`~pyburnerkit.de1.sequencer.ShotSequencer` the application runs for as long as it lives.

Threading: the WSGI server calls the application from its worker threads, several at a time;
each request blocks its worker for at most ``request_timeout`` seconds (a DE1 that does not
answer gives 408, as pyDE1). GETs read the clients' caches and never block, except
``GET /de1/setting/time`` (a read of the DE1's SetTime, bounded by ``request_timeout``) and
``GET /de1/profile/id`` (a short SQLite read of the profile library). The one long job,
a firmware upload (``PUT /de1/firmware``), runs on its own thread
(``pyburnerkit-service-pyde1-firmware``) and reports progress through the DE1 client's
:class:`~pyburnerkit.de1.models.UploadProgress` events; :meth:`Pyde1App.close` cancels and joins
it.

Status codes
------------

=====  ==========================================================================================
200    success (GET: the JSON document; PATCH/PUT: a JSON list)
400    malformed JSON, a body that is not a JSON object, an unknown or read-only key, a value of
       the wrong type (pyDE1's ``DE1APITypeError``), an unknown mode, a value outside the
       library's limits (``ConfigurationError`` naming the value, the limit and the unit)
403    a change while the service was not configured with ``allow_writes`` (or the client was
       opened without the permission the change needs, ``WriteNotAllowedError``)
404    an unknown path; ``PUT /de1/profile/id`` with an id the profile library does not hold
405    a method the resource does not allow (pyDE1's own table); the ``Allow`` header lists the
       allowed ones
408    the device did not answer within the request timeout
409    the device is not connected (or not configured), the machine's state refuses the request,
       a firmware upload is already running
411    PATCH/PUT without ``Content-Length``
413    a body over 16 KiB (1 MiB for ``/de1/firmware``)
418    a feature the device or pyburnerkit does not offer (starting a flow with the group head
       controller active, skip-to-next on old firmware, thermometers, scanning, logs, ...)
500    anything else; the body names the error class only, the details go to the service log
=====  ==========================================================================================

Where pyDE1's behaviour is ambiguous, the choices made here are listed in the
``docs/service.rst`` section *Choices where pyDE1 is ambiguous*.
"""

from __future__ import annotations

import importlib.metadata
import os
import json
import logging
import threading
import time
from email.utils import formatdate
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from ..de1.firmware import load_firmware
from ..de1.library import ProfileLibrary, ProfileNotFoundError
from ..de1.models import MachineState, StateChanged
from ..de1.sequencer import ShotSequencer, check_stop_targets
from ..errors import (ClientClosedError, ConfigurationError, DeviceConnectionError, DeviceError,
                      DeviceTimeoutError, PyBurnerKitError, UnsupportedFeatureError,
                      WriteNotAllowedError, check_range)
from .pyde1_resources import (ROOTS, RESOURCES, ApiError, Resource, not_connected,
                              resource_for, state_name, substate_name)

__all__ = ["Pyde1App", "TIMESTAMP_HEADER"]

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "x-pyde1-timestamp"
#: pyDE1 sends plain "text/plain"; the charset keeps messages with units (°C) readable
_TEXT = "text/plain; charset=utf-8"
_MODULES = ("pyburnerkit", "pygatt", "waitress", "paho-mqtt")

StartResponse = Callable[..., Any]

_DEFAULT_CONTROLS: Mapping[str, Mapping[str, Any]] = {
    "espresso": {"stop_at_time": None, "stop_at_volume": None, "stop_at_weight": None,
                 "move_on_weight": [], "disable_auto_tare": False,
                 "profile_can_override_stop_limits": False,
                 "profile_can_override_tank_temperature": True,
                 "first_drops_threshold": 0.0, "last_drops_minimum_time": 3.0},
    "steam": {"stop_at_volume": None, "stop_at_weight": None, "disable_auto_tare": False},
    "hot_water": {"stop_at_weight": None, "disable_auto_tare": False},
    "hot_water_rinse": {"stop_at_time": None, "stop_at_volume": None, "stop_at_weight": None,
                        "disable_auto_tare": False},
}
_FLOW_CONTROLS = {MachineState.ESPRESSO: "espresso", MachineState.STEAM: "steam",
                  MachineState.HOT_WATER: "hot_water",
                  MachineState.HOT_WATER_RINSE: "hot_water_rinse"}


class _ModeSequencer(ShotSequencer):
    """The library's shot sequencer, with its stop targets taken from the ``/de1/control/*``
    resource of the flow state that begins (pyDE1 keeps one control set per flow mode).

    ``targets(state)`` is asked at every sequence start, on the DE1 client's events thread
    under the sequencer's lock; it must not block.
    """

    def __init__(self, de1: Any, scale: Any, targets: Callable[[Optional[MachineState]],
                                                              Dict[str, Any]],
                 time_scale: float) -> None:
        self._targets = targets  # before the base class, whose constructor resets
        super().__init__(de1, scale, auto_tare=False, profile_can_override=False,
                         time_scale=time_scale)

    def _reset(self, state: Optional[MachineState]) -> None:
        for name, value in self._targets(state).items():
            setattr(self, name, value)
        super()._reset(state)


class Pyde1App:
    """pyDE1's HTTP API as a WSGI application over a DE1 client and a scale client.

    :param de1: a :class:`~pyburnerkit.de1.client.DE1Client` (connected or connecting), or
        None: then the DE1's resources answer 409.
    :param scale: a :class:`~pyburnerkit.scale.client.SkaleClient`, or None: then the scale's
        resources answer 409 and stop-at-weight has nothing to weigh.
    :param allow_writes: let PATCH/PUT change the devices (else 403, see the module's
        "Choices" section). The clients' own permissions apply on top.
    :param request_timeout: seconds a request may wait for a device (0.1..600; 408 after).
    :param time_scale: simulated seconds per real second for the stop-at lag model (default:
        the scale client's ``time_scale``, else 1).
    :param start: follow the DE1 at once (subscribe, start the shot sequencer); with False,
        :meth:`start` does it later - after a publisher of pyDE1's MQTT topics subscribed
        first, so each state update is published before the gates it opens.
    :param library: where profiles are stored and selected by id, as pyDE1's database: a
        :class:`~pyburnerkit.de1.library.ProfileLibrary` or the path of its SQLite file
        (default: ``ProfileLibrary()``, the recorder's ``pyburnerkit.db`` in the current
        directory). Opened lazily: the constructor touches no file.
    :type library: :class:`~pyburnerkit.de1.library.ProfileLibrary`, ``str``,
        ``os.PathLike[str]`` or ``None``
    :raises ConfigurationError: ``request_timeout`` or ``time_scale`` out of range, or a bad
        ``library``.

    The constructor does no I/O: it subscribes to the DE1 client's events (the shot sequencer,
    the state for ``/de1/state``). Call :meth:`close` when done (idempotent).
    """

    def __init__(self, de1: Any, scale: Any, *, allow_writes: bool,
                 request_timeout: float = 10.0, time_scale: Optional[float] = None,
                 start: bool = True,
                 library: Union[ProfileLibrary, str, "os.PathLike[str]", None] = None) -> None:
        self.request_timeout = float(check_range("request_timeout", request_timeout, 0.1, 600,
                                                 "s"))
        self.de1 = de1
        self.scale = scale
        self.allow_writes = bool(allow_writes)
        self.library = _library(library)
        if time_scale is None:
            time_scale = float(getattr(scale, "time_scale", 1.0)) if scale is not None else 1.0
        self.time_scale = time_scale
        self._lock = threading.Lock()
        self._controls: Dict[str, Dict[str, Any]] = {
            mode: dict(values) for mode, values in _DEFAULT_CONTROLS.items()}
        self._state_at: Optional[float] = None
        self._state_update: Optional[str] = None
        self._fw_thread: Optional[threading.Thread] = None
        self._versions: Optional[Dict[str, Optional[str]]] = None
        self._closed = False
        self._subs: List[Any] = []
        self.sequencer: Optional[ShotSequencer] = None
        self._started = False
        if de1 is not None:
            self.sequencer = _ModeSequencer(de1, scale, self._sequencer_targets, time_scale)
        if start:
            self.start()

    def start(self) -> "Pyde1App":
        """Follow the DE1: subscribe to its state and start the shot sequencer. Does no I/O;
        idempotent; any thread."""
        with self._lock:
            if self._started or self._closed or self.de1 is None:
                return self
            self._started = True
            self._subs.append(self.de1.subscribe(self._on_state, StateChanged))
        assert self.sequencer is not None
        self.sequencer.start()
        return self

    # ------------------------------------------------------------------ lifecycle
    def close(self, timeout: float = 5.0) -> None:
        """Stop the shot sequencer and the event subscriptions; cancel a firmware upload in
        progress and join its thread within ``timeout`` seconds. Idempotent, any thread.
        The clients stay open (they are the caller's)."""
        with self._lock:
            self._closed = True
            subs, self._subs = self._subs, []
            thread = self._fw_thread
        for sub in subs:
            sub.cancel()
        if self.sequencer is not None:
            self.sequencer.close()
        if thread is not None and thread.is_alive():
            self.de1.cancel_firmware_upload()
            thread.join(timeout)
            if thread.is_alive():
                log.warning("pyDE1 API: the firmware upload did not stop within %g s", timeout)

    def __enter__(self) -> "Pyde1App":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ routing
    @staticmethod
    def handles(path: str) -> bool:
        """Whether ``path`` (a request's PATH_INFO) belongs to pyDE1's API: its first
        segment is one of pyDE1's resource roots (``version``, ``de1``, ``scale``, ``scan``,
        ``logs``, ``log``, ``thermometer``, ``flow_sequencer``). Unknown paths under those
        roots are answered 404 by this application, in pyDE1's words."""
        first = path.lstrip("/").split("/", 1)[0]
        return first in ROOTS

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (a WSGI server's worker thread). Blocks at most about
        ``request_timeout`` seconds (a firmware upload only starts here)."""
        headers: List[Tuple[str, str]] = []
        try:
            status, body, ctype = self._handle(environ, headers)
        except ApiError as exc:
            status, body, ctype = exc.status, _error_text(exc.kind, exc.message, exc), \
                _TEXT
        except PyBurnerKitError as exc:
            status = _status_of(exc)
            body, ctype = _error_text(type(exc).__name__, str(exc)), _TEXT
            log.info("pyDE1 API %s %s: %s %s", environ.get("REQUEST_METHOD"),
                     environ.get("PATH_INFO"), status, body)
        except Exception as exc:  # answered, never raised into the server
            log.exception("pyDE1 API %s %s failed", environ.get("REQUEST_METHOD"),
                          environ.get("PATH_INFO"))
            status, body, ctype = 500, f"InternalError('{type(exc).__name__}: see the " \
                "service log')", _TEXT
        stamp = time.time()
        data = body.encode("utf-8")
        headers[:0] = [("Content-Type", ctype), ("Content-Length", str(len(data))),
                       ("Last-Modified", formatdate(stamp, usegmt=True)),
                       (TIMESTAMP_HEADER, repr(stamp))]
        start_response(_STATUS_LINES.get(status, f"{status} Error"), headers)
        return [data]

    def _handle(self, environ: Dict[str, Any],
                headers: List[Tuple[str, str]]) -> Tuple[int, str, str]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", ""))
        res = resource_for(path[1:] if path.startswith("/") else path)
        if res is None:
            raise _plain(404, f"Unrecognized resource {_request_line(environ)}")
        if method not in res.methods:
            headers.append(("Allow", ", ".join(sorted(res.methods))))
            raise _plain(405, f"{method} not permitted for {res.name}")
        if res.missing:
            raise ApiError(418, "DE1APIUnsupportedFeatureError",
                           f"{res.missing} is not offered by pyburnerkit's pyDE1 API")
        if method == "GET":
            return 200, _json(self._get(res)), "application/json"
        body = self._read_body(environ, res)
        if res.raw:
            return 200, _json(self._put_raw(res, body)), "application/json"
        payload = _parse_json(body)
        self._validate(res, payload, "")
        self._check_writes(res, payload)
        return 200, _json(self._apply(res, payload)), "application/json"

    # ------------------------------------------------------------------ bodies
    @staticmethod
    def _read_body(environ: Dict[str, Any], res: Resource) -> bytes:
        text = environ.get("CONTENT_LENGTH")
        if text is None or str(text).strip() == "":
            raise _plain(411, "Missing Content-Length header")
        try:
            length = int(text)
        except ValueError:
            raise ApiError(400, "DE1APIValueError", f"Content-Length {text!r} is not a "
                                                    f"number") from None
        if length > res.limit:
            raise _plain(413, f"Patch is too large: {length} bytes, the limit is "
                              f"{res.limit} bytes")
        if length <= 0:
            return b""
        data: bytes = environ["wsgi.input"].read(length)
        return data

    def _validate(self, res: Resource, payload: Mapping[str, Any], path: str) -> None:
        """pyDE1's validation: every key known and writable, every value of its type (400);
        aggregates recurse into their children."""
        children = dict(res.children)
        for key, value in payload.items():
            where = f"{path}:{key}" if path else str(key)
            if children:
                child = children.get(key)
                if child is None:
                    raise ApiError(400, "DE1APIAttributeError", f"No mapping found for {where}")
                if not isinstance(value, dict):
                    raise ApiError(400, "DE1APITypeError",
                                   f"Expected an object at {where}:, not {json.dumps(value)}")
                self._validate(RESOURCES[child], value, where)
                continue
            spec = res.fields.get(key)
            if spec is None:
                raise ApiError(400, "DE1APIAttributeError", f"No mapping found for {where}")
            if spec.read_only:
                raise ApiError(400, "DE1APIAttributeError", f"Unable to write {where}:")
            spec.check(where, value)

    def _check_writes(self, res: Resource, payload: Mapping[str, Any]) -> None:
        if self.allow_writes:
            return
        if res.always_allowed and len(payload) == 1 and \
                next(iter(payload.values())) in res.always_allowed:
            return
        raise WriteNotAllowedError(f"/{res.path} changes the device: this service was not "
                                   f"configured with allow_writes")

    # ------------------------------------------------------------------ GET / PATCH
    def _need(self, res: Resource) -> None:
        if res.needs == "de1":
            self.require_de1()
        elif res.needs == "scale":
            self.require_scale()

    def _get(self, res: Resource) -> Any:
        self._need(res)
        if res.children:
            doc = {}
            for key, child_path in res.children:
                child = RESOURCES[child_path]
                if not child.missing and (child.get is not None or child.children):
                    doc[key] = self._get(child)
            return doc
        assert res.get is not None, res.path  # every GET resource has a getter
        return res.get(self)

    def _apply(self, res: Resource, payload: Mapping[str, Any]) -> List[Any]:
        """Hand each part of a validated PATCH to its setter, in order. Like pyDE1, a PATCH
        of several parts is not atomic: a refusal stops it, earlier parts stay applied."""
        self._need(res)
        if res.children:
            children = dict(res.children)
            done: List[Any] = []
            for key, value in payload.items():
                done.extend(self._apply(RESOURCES[children[key]], value))
            return done
        if not payload or res.set is None:  # nothing writable was given
            return []
        return res.set(self, dict(payload))

    # ------------------------------------------------------------------ raw PUTs
    def _put_raw(self, res: Resource, body: bytes) -> List[Any]:
        if res.path == "de1/firmware/cancel":  # stopping never needs allow_writes
            if self.de1 is None:
                raise not_connected("DE1")
            self.de1.cancel_firmware_upload()
            return []
        if not self.allow_writes:
            raise WriteNotAllowedError(f"/{res.path} changes the device: this service was "
                                       f"not configured with allow_writes")
        if res.path == "de1/firmware":
            return self._start_firmware(body)
        try:  # checked only: the library hashes the bytes as they came (pyDE1's id)
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, "DE1APIValueError",
                           f"the profile is not UTF-8 text: {exc}") from None
        if res.path == "de1/profile/store":
            entry = self.library.store(body)
            return [{"id": entry.id, "fingerprint": entry.fingerprint}]
        de1 = self.require_de1()
        program = de1.upload_profile(body, override_tank_temperature=self._tank_override(),
                                     timeout=self.request_timeout, library=self.library)
        return [{"id": program.profile_id, "fingerprint": program.fingerprint}]

    def _tank_override(self) -> bool:
        with self._lock:
            return bool(self._controls["espresso"]["profile_can_override_tank_temperature"])

    def upload_stored_profile(self, profile_id: str) -> List[Any]:
        """``PUT /de1/profile/id``: upload a profile of the library by its id and select it
        there (404 ``DE1DBNoMatchingRecord`` for an id the library does not hold; nothing is
        sent then). Blocks the request's worker until the DE1 took it."""
        de1 = self.require_de1()
        try:
            program = de1.upload_profile_by_id(profile_id, self.library,
                                               override_tank_temperature=self._tank_override(),
                                               timeout=self.request_timeout)
        except ProfileNotFoundError as exc:
            # the library's message names its file: not for the network
            raise ApiError(404, "DE1DBNoMatchingRecord",
                           f"No profile with id {profile_id!r} in the profile library") from exc
        return [{"id": program.profile_id, "fingerprint": program.fingerprint}]

    def selected_profile(self) -> Optional[str]:
        """``GET /de1/profile/id``: the id of the profile last selected in the library (the
        last one uploaded through it, as pyDE1's ``last_profile``), or None."""
        return self.library.selected

    def _start_firmware(self, body: bytes) -> List[Any]:
        de1 = self.require_de1()
        if not de1.allow_writes:
            raise WriteNotAllowedError("upload_firmware changes the machine: open the DE1 "
                                       "client with allow_writes=True")
        load_firmware(body)  # the library's header check: 400 before anything starts
        state = de1.state
        if state not in (MachineState.SLEEP, MachineState.IDLE, MachineState.GOING_TO_SLEEP):
            raise ApiError(409, "DE1APIUnsupportedStateTransitionError",
                           f"firmware upload needs an idle or sleeping DE1, it is in "
                           f"{state_name(state) if state is not None else 'an unknown state'}")
        with self._lock:
            if self._closed:
                raise ClientClosedError("the pyDE1 API is closed")
            if self._fw_thread is not None and self._fw_thread.is_alive():
                raise ApiError(409, "DE1OperationInProgressError",
                               "a firmware upload is already in progress")
            self._fw_thread = threading.Thread(target=self._firmware_job, args=(body,),
                                               name="pyburnerkit-service-pyde1-firmware",
                                               daemon=True)
            self._fw_thread.start()
        return []

    def _firmware_job(self, body: bytes) -> None:
        """The upload thread: the client reports progress and the result as UploadProgress
        events; a failure is logged here too."""
        try:
            version = self.de1.upload_firmware(body)
            log.info("pyDE1 API: firmware %s uploaded to the DE1", version)
        except PyBurnerKitError as exc:
            log.warning("pyDE1 API: firmware upload failed: %s", exc)
        except Exception:
            log.exception("pyDE1 API: firmware upload failed")

    # ------------------------------------------------------------------ for the resources
    def require_de1(self) -> Any:
        """The DE1 client, connected (409 ``DE1NotConnectedError`` otherwise)."""
        de1 = self.de1
        if de1 is None or not de1.connected:
            raise not_connected("DE1")
        return de1

    def require_info(self) -> Any:
        info = self.require_de1().info
        if info is None:
            raise not_connected("DE1")
        return info

    def require_scale(self) -> Any:
        scale = self.scale
        if scale is None or not scale.connected:
            raise not_connected("Scale")
        return scale

    def module_versions(self) -> Dict[str, Optional[str]]:
        if self._versions is None:
            found: Dict[str, Optional[str]] = {}
            for name in _MODULES:
                try:
                    found[name] = importlib.metadata.version(name)
                except importlib.metadata.PackageNotFoundError:
                    found[name] = None
            self._versions = found
        return dict(self._versions)

    def state_updated_at(self) -> Optional[float]:
        with self._lock:
            return self._state_at

    def last_state_update(self) -> Optional[str]:
        """The last state change as pyDE1's StateUpdate MQTT payload (a JSON string), or None
        before the first change this application saw."""
        with self._lock:
            return self._state_update

    def _on_state(self, event: StateChanged) -> None:
        """DE1 events thread: remember the change for ``GET /de1/state``."""
        now = time.time()
        payload = {"arrival_time": now, "create_time": now, "event_time": now,
                   "state": state_name(event.state),
                   "substate": substate_name(event.substate),
                   "previous_state": None if event.previous_state is None
                   else state_name(event.previous_state),
                   "previous_substate": None if event.previous_substate is None
                   else substate_name(event.previous_substate),
                   "is_error_state": event.state is MachineState.FATAL_ERROR
                   or event.substate.is_error,
                   "version": "1.0.0", "sender": "DE1", "class": "StateUpdate"}
        with self._lock:
            self._state_at = now
            self._state_update = json.dumps(payload)

    def controls(self, mode: str) -> Dict[str, Any]:
        """A copy of the app-side controls of one flow mode."""
        with self._lock:
            values = dict(self._controls[mode])
        if "move_on_weight" in values:  # the only mutable value: not shared with the caller
            values["move_on_weight"] = list(values["move_on_weight"])
        return values

    def check_controls(self, mode: str, values: Mapping[str, Any]) -> None:
        """Check app-side control values with the library's sequencer rules (stop targets
        0.1..2000 g / mL, 0.1..600 s; move-on needs ``allow_remote_start``).

        :raises ConfigurationError: a value out of its limit (400).
        :raises WriteNotAllowedError: move-on-by-weight on a DE1 client that may not skip.
        """
        check_stop_targets(values.get("stop_at_weight"), values.get("stop_at_volume"),
                           values.get("stop_at_time"))
        for grams in values.get("move_on_weight") or ():
            if grams is not None:
                check_range("move_on_weight", grams, 0.1, 2000, "g")
        if values.get("first_drops_threshold") is not None:
            check_range("first_drops_threshold", values["first_drops_threshold"], 0, 16, "bar")
        if "last_drops_minimum_time" in values:
            check_range("last_drops_minimum_time", values["last_drops_minimum_time"], 0, 60, "s")
        if any(values.get("move_on_weight") or ()):
            # the sequencer's own gate, without starting one: it refuses move-on-by-weight
            # on a DE1 client that may not send SkipToNext
            ShotSequencer(self.de1, None, move_on_weight=values["move_on_weight"],
                          auto_tare=False)

    def update_controls(self, mode: str, values: Mapping[str, Any]) -> None:
        """Check (:meth:`check_controls`) and keep app-side control values; the sequencer
        takes them at the next flow start of that mode."""
        self.check_controls(mode, values)
        with self._lock:
            self._controls[mode].update(values)

    def rinse_by_de1(self) -> bool:
        """Whether the DE1 times the flush itself (firmware 1283+: FLUSH_TIMEOUT)."""
        info = self.de1.info if self.de1 is not None else None
        return info is not None and info.features.rinse_control

    def shot_settings(self, **changes: Any) -> None:
        self.require_de1().set_shot_settings(timeout=self.request_timeout, **changes)

    def write_setting(self, name: str, value: Any) -> None:
        self.require_de1().write_setting(name, value, timeout=self.request_timeout)

    def _sequencer_targets(self, state: Optional[MachineState]) -> Dict[str, Any]:
        """The sequencer's settings for a sequence starting in ``state`` (DE1 events thread,
        under the sequencer's lock; only takes this application's lock)."""
        mode = _FLOW_CONTROLS.get(state) if state is not None else None
        with self._lock:
            c = dict(self._controls[mode]) if mode is not None else {}
        scale = self.scale
        tare_ok = self.allow_writes and scale is not None and bool(
            getattr(scale, "allow_writes", False))
        by_de1 = self.rinse_by_de1()
        first = c.get("first_drops_threshold")
        return {
            "stop_at_weight": c.get("stop_at_weight"),
            "stop_at_volume": None if mode == "hot_water" else c.get("stop_at_volume"),
            # steam and hot water are timed by the DE1 (ShotSettings), a flush too on 1283+
            "stop_at_time": c.get("stop_at_time") if mode == "espresso"
            or (mode == "hot_water_rinse" and not by_de1) else None,
            "move_on_weight": list(c.get("move_on_weight") or []),
            "auto_tare": tare_ok and mode is not None and not c.get("disable_auto_tare", False),
            "profile_can_override": bool(c.get("profile_can_override_stop_limits", False)),
            "first_drops_threshold": 0.0 if first is None else float(first),
            "last_drops_minimum_time": float(c.get("last_drops_minimum_time", 3.0)),
        }


# ------------------------------------------------------------------------ helpers

def _library(library: Union[ProfileLibrary, str, "os.PathLike[str]", None]) -> ProfileLibrary:
    if library is None:
        return ProfileLibrary()
    if isinstance(library, ProfileLibrary):
        return library
    if isinstance(library, (str, os.PathLike)):
        return ProfileLibrary(os.fspath(library))
    raise ConfigurationError(f"library must be a ProfileLibrary or the path of its SQLite "
                             f"file, got {type(library).__name__}")


_STATUS_LINES = {200: "200 OK", 400: "400 Bad Request", 403: "403 Forbidden",
                 404: "404 Not Found", 405: "405 Method Not Allowed",
                 408: "408 Request Timeout", 409: "409 Conflict",
                 411: "411 Length Required", 413: "413 Request Entity Too Large",
                 418: "418 I'm a Teapot", 500: "500 Internal Server Error"}


class _Plain(ApiError):
    """A refusal pyDE1 words as plain text (404, 405, 411, 413), not as an exception repr."""


def _plain(status: int, message: str) -> ApiError:
    return _Plain(status, "", message)


def _error_text(kind: str, message: str, exc: Optional[ApiError] = None) -> str:
    if isinstance(exc, _Plain):
        return message
    return f"{kind}({message!r})"


def _status_of(exc: PyBurnerKitError) -> int:
    """The library's error tree as pyDE1's status codes (see the module docstring)."""
    if isinstance(exc, WriteNotAllowedError):
        return 403
    if isinstance(exc, ConfigurationError):
        return 400
    if isinstance(exc, UnsupportedFeatureError):
        return 418
    if isinstance(exc, (DeviceConnectionError, ClientClosedError)):
        return 409
    if isinstance(exc, DeviceTimeoutError):
        return 408
    if isinstance(exc, DeviceError):
        return 409
    return 500


def _json(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, indent=4) + "\n"


def _parse_json(body: bytes) -> Dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApiError(400, "JSONDecodeError", f"the body is not UTF-8 text: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, "JSONDecodeError", str(exc)) from None
    if not isinstance(payload, dict):
        raise ApiError(400, "DE1APITypeError",
                       f"Validate: Mapping and patch inconsistent, dict with dict, IsAt with "
                       f"bytes/str value not {dict!r} with {type(payload)!r}")
    return payload


def _request_line(environ: Mapping[str, Any]) -> str:
    target = environ.get("RAW_URI") or (str(environ.get("PATH_INFO", "")) + (
        "?" + str(environ["QUERY_STRING"]) if environ.get("QUERY_STRING") else ""))
    return f"{environ.get('REQUEST_METHOD', '')} {target} " \
           f"{environ.get('SERVER_PROTOCOL', 'HTTP/1.1')}"
