"""The command plane behind Home Assistant's controls: a setting or an action asked for over
MQTT becomes one call of the library's own setter on the device's client.

:class:`Commands` is built by the :class:`~pyburnerkit.recorder.Recorder` from its sources and
handed to every sink that offers ``attach_commands(router)`` (the MQTT sink); a sink calls
:meth:`Commands.controllable` to know which entities get a command topic and
:meth:`Commands.submit` with each command payload it receives.

What may be changed, and how (the same rules as a script using the library):

* nothing unless the device's client was opened with writes allowed (``allow_writes = true``
  under ``[devices.options]`` in the config, ``allow_writes=True`` in Python);
* then only the fields of the family's semantic table (:mod:`pyburnerkit.semantics`) that have
  a :class:`~pyburnerkit.semantics.Control` marked ``safe``, plus the fields the user lists in
  the device's ``controls`` (config) / ``controls=`` (Python), by field name, as
  ``<channel>/<field>``, or as the table keys them (Victron: ``<service type>/<path>``, see
  :func:`opt_in_names`);
* the payload is converted per entity kind and handed to the method the control names, which
  checks limits, write gating and the device's confirmation itself: a command goes through
  exactly the checks a script's call does, and a refused command sends nothing.

Commands run one at a time, in the order they were submitted, on one thread
(``pyburnerkit-recorder-commands``), each with a finite timeout. A command is never retried: a
refusal or a failure is replied (and logged at WARNING) and that is the end of it.

Argument conventions of ``Control.argument`` (:class:`~pyburnerkit.semantics.Control`):

``"value"``
    ``method(value)``.
``"none"``
    ``method()`` (an action).
``"path"``
    ``method(<where>, value)``, where the field's place on the device comes from its channel
    and name: Victron ``set_value(service, path, value)`` (channel = the D-Bus service, field =
    the D-Bus path); Mate3 ``write("charge_controllers[3].absorb_volts", value)`` (channel =
    the HUB port, resolved to the device's path in the client's current system); any other
    family ``method(field, value)``.
``"path:<template>"``
    ``method(<template>, value)``, the template formatted with ``{channel}``, ``{field}`` and,
    for Mate3, ``{owner}`` (the device path of the channel's HUB port): a table entry whose
    recorded field is not where it is written (a Mate3 ``"path:{owner}.config.absorb_volts"``,
    a Victron ``"path:/Settings/CGwacs/AcPowerSetPoint"`` written on the channel's service).
any other word
    a keyword argument: ``method(<word>=value)``.

The client method gets ``timeout=`` when it takes one (every library setter does).
"""

from __future__ import annotations

import enum
import inspect
import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import (Any, Callable, Deque, Dict, FrozenSet, Iterable, List, Mapping, Optional,
                    Tuple)

from .. import families as registry
from .._core.timeouts import Deadline
from ..errors import (ConfigurationError, DeviceTimeoutError, PyBurnerKitError,
                      WriteNotAllowedError)
from ..semantics import Control, Entity, FieldTable
from ..types import Event
from .samples import Labelled
from .secrets import is_secret_key, redact_text

log = logging.getLogger(__name__)

__all__ = ["Commands", "CommandStats", "CommandHandled", "Reply", "load_table", "lookup",
           "check_controls", "controllable_names", "opt_in_names"]

#: ``reply(ok, message, confirmed_value)``: see :meth:`Commands.submit`.
Reply = Callable[[bool, str, Any], None]

#: what a climate entity's mode command may say (Home Assistant's HVAC modes we map)
CLIMATE_MODES = ("heat", "off")

_THREAD_NAME = "pyburnerkit-recorder-commands"


# ------------------------------------------------------------------------------ the tables
def load_table(family: str) -> Optional[FieldTable]:
    """The semantic table of ``family``, or None when the family has none (not written yet,
    not registered, or its module cannot be imported): such a family has no controls."""
    try:
        table = registry.get(family).load("fields")
    except (ImportError, ConfigurationError, AttributeError):
        return None
    return table if isinstance(table, FieldTable) else None


def controllable_names(table: Optional[FieldTable]) -> List[str]:
    """The exact field names of ``table`` that have a control, sorted."""
    return sorted(table.controls()) if table is not None else []


def lookup(table: Optional[FieldTable], field: str, channel: str = "") -> Optional[Entity]:
    """The entity of ``field`` on ``channel``: a table whose meanings depend on the channel
    (Victron: the service type) is asked with ``channel=``."""
    if table is None:
        return None
    if _takes_channel(type(table)):
        finder: Callable[..., Optional[Entity]] = table.lookup
        return finder(field, channel=channel)
    return table.lookup(field)


def _takes_channel(cls: type) -> bool:
    cached = _CHANNEL_LOOKUP.get(cls)
    if cached is None:
        try:
            cached = "channel" in inspect.signature(getattr(cls, "lookup")).parameters
        except (TypeError, ValueError):
            cached = False
        _CHANNEL_LOOKUP[cls] = cached
    return cached


_CHANNEL_LOOKUP: Dict[type, bool] = {}


def opt_in_names(channel: str, field: str) -> FrozenSet[str]:
    """The names under which a user may list the field in ``controls``: the field itself,
    ``<channel>/<field>``, and for a channel named with dots each of its leading parts
    (``com.victronenergy.vebus/Mode`` for the field ``/Mode`` of the service
    ``com.victronenergy.vebus.ttyS4``, which is how the Victron table keys its controls)."""
    names = {field}
    if channel:
        names.add(f"{channel}/{field}".replace("//", "/"))
        parts = channel.split(".")
        for end in range(1, len(parts)):
            names.add(f"{'.'.join(parts[:end])}/{field}".replace("//", "/"))
    return frozenset(names)


def check_controls(family: str, names: Any, where: str = "controls") -> Tuple[str, ...]:
    """Validate a device's ``controls`` opt-in list against its family's table.

    A name may be any field the table gives a control (an exact key such as ``"PumpCal"`` or
    ``"com.victronenergy.vebus/Mode"``, or a field a pattern key of the table matches).

    :returns: the names as a tuple.
    :raises ConfigurationError: not a list of strings, or a name that is not a controllable
        field of the family (the message names it and lists the controllable ones).
    """
    if isinstance(names, str) or not isinstance(names, (list, tuple, set, frozenset)) \
            or not all(isinstance(n, str) and n for n in names):
        raise ConfigurationError(f"{where} must be a list of field names, e.g. "
                                 f'["PumpCal"], got {names!r}')
    table = load_table(family)
    known = controllable_names(table)
    for name in names:
        entity = lookup(table, name)
        if entity is None or entity.control is None:
            listed = ", ".join(known) if known else "none: this family has no controls"
            raise ConfigurationError(
                f"{where}: {name!r} is not a controllable field of the {family} family; "
                f"controllable: {listed}")
    return tuple(names)


# ------------------------------------------------------------------------------ families
class _Dialect:
    """Where a field is written and how its value is read back, for families whose setters
    take the field's place (``"path"`` arguments) or confirm through another call."""

    def path_args(self, client: Any, channel: str, field: str) -> Tuple[Any, ...]:
        return (field,)

    def template_args(self, client: Any, channel: str, field: str,
                      template: str) -> Tuple[Any, ...]:
        return (self._format(template, client, channel, field),)

    def _format(self, template: str, client: Any, channel: str, field: str) -> str:
        try:
            return template.format(channel=channel, field=field)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigurationError(f"the table's path template {template!r} of {field} "
                                     f"cannot be filled: {exc}") from None

    def read_back(self, client: Any, channel: str, field: str, result: Any,
                  timeout: float) -> Any:
        """The field's value on the device after the call, or :data:`_UNKNOWN`."""
        reported = getattr(client, "reported_value", None)
        if callable(reported):  # the Afterburner keeps every key the controller pushed
            value = reported(field)
            if value is not None:
                return value
        if result is not None and not isinstance(result, (str, bytes)) \
                and hasattr(result, field):  # a returned state naming the field (DE1)
            return getattr(result, field)
        return _UNKNOWN


class _Mate3(_Dialect):
    @staticmethod
    def owner(client: Any, channel: str) -> str:
        """The device path of a recorder channel (a HUB port, or ``"mate3"``)."""
        system = getattr(client, "system", None)
        if system is not None:
            for path, dev in system.devices():
                if dev.port is not None and str(dev.port) == channel:
                    return str(path)
        if channel and not channel.isdigit():
            return channel
        raise ConfigurationError(f"no Mate3 device on HUB port {channel!r} in the current "
                                 f"system")

    def path_args(self, client: Any, channel: str, field: str) -> Tuple[Any, ...]:
        return (f"{self.owner(client, channel)}.{field}",)

    def _format(self, template: str, client: Any, channel: str, field: str) -> str:
        if "{owner}" in template:
            template = template.replace("{owner}", self.owner(client, channel))
        return super()._format(template, client, channel, field)

    def read_back(self, client: Any, channel: str, field: str, result: Any,
                  timeout: float) -> Any:
        if result is not None and hasattr(result, "value"):  # the write's read-back
            value = result.value
            if hasattr(value, "label"):  # the recorder records enums as their number
                return int(value)
            return value
        return _UNKNOWN


class _Victron(_Dialect):
    def path_args(self, client: Any, channel: str, field: str) -> Tuple[Any, ...]:
        return (channel, field)

    def template_args(self, client: Any, channel: str, field: str,
                      template: str) -> Tuple[Any, ...]:
        return (channel, self._format(template, client, channel, field))

    def read_back(self, client: Any, channel: str, field: str, result: Any,
                  timeout: float) -> Any:
        # SetValue's answer says nothing of the value the service kept (it may round it):
        # ask the service
        return client.read_value(channel, field, timeout=timeout)


_DIALECTS: Dict[str, _Dialect] = {"mate3": _Mate3(), "victron": _Victron()}
_DEFAULT_DIALECT = _Dialect()


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown>"


_UNKNOWN: Any = _Unknown()


# ------------------------------------------------------------------------------ state
@dataclass(frozen=True)
class CommandStats:
    """What :class:`Commands` did so far: ``done`` commands confirmed, ``refused`` commands
    refused or failed, ``queued`` waiting, ``running`` the command on the device now (a
    ``"family/device channel field"`` text) or None."""

    done: int
    refused: int
    queued: int
    running: Optional[str]


@dataclass(frozen=True)
class CommandHandled(Event):
    """One command was carried out (``ok``, ``confirmed`` the field's value afterwards) or
    refused (``message`` says why). The payload is not repeated (it may be a secret)."""

    family: str
    device: str
    channel: str
    field: str
    ok: bool
    message: str = ""
    confirmed: Any = None

    def format(self) -> str:
        where = f"{self.family}/{self.device} {self.channel + ' ' if self.channel else ''}"
        if self.ok:
            shown = "" if self.confirmed is None else f" (now {self.confirmed!r})"
            return f"command {where}{self.field}: done{shown}"
        return f"command {where}{self.field}: REFUSED: {self.message}"


@dataclass
class _Device:
    family: str
    device: str
    client: Any
    table: Optional[FieldTable]
    opted_in: FrozenSet[str]

    @property
    def writes_allowed(self) -> bool:
        return bool(getattr(self.client, "allow_writes", False))


@dataclass
class _Job:
    """One command (``call`` set), or a refusal to reply (``call`` None, ``message`` why)."""

    key: Tuple[str, str, str, str]  # family, device, channel, field
    reply: Reply
    call: Optional[Callable[[], Any]] = None
    message: str = ""

    @property
    def label(self) -> str:
        family, device, channel, field = self.key
        return f"{family}/{device} {channel + ' ' if channel else ''}{field}"


# ------------------------------------------------------------------------------ router
class Commands:
    """Route commands from a sink (Home Assistant over MQTT) to the devices' clients.

    Structurally the ``CommandRouter`` protocol of the MQTT sink.

    :param sources: the recorder's sources; each is ``(family, device)`` with its ``client``
        (a source without a client has no controls).
    :param controls: per device, the fields controllable although the table does not mark them
        ``safe``: ``{"afterburner/cabin": ["PumpCal"]}`` (keys ``family/device``; names as
        :func:`check_controls` accepts them).
    :param timeout: seconds each command may take on the device (passed to the client method
        as ``timeout=``; also the read-back's).
    :param max_pending: commands that may wait behind the running one; one more is refused.
    :param on_result: called with a :class:`CommandHandled` after each reply (on the
        commands thread; the recorder publishes it as an event).
    :raises ConfigurationError: a ``controls`` key that names no source, or a field that is not
        a controllable field of that device's family (the message lists the controllable
        ones); a bad ``timeout`` or ``max_pending``.

    Thread-safe. Commands run on the thread ``pyburnerkit-recorder-commands``, started by the
    first :meth:`submit` and stopped by :meth:`close`.
    """

    def __init__(self, sources: Iterable[Any], *,
                 controls: Optional[Mapping[str, Iterable[str]]] = None,
                 timeout: float = 10.0, max_pending: int = 32,
                 on_result: Optional[Callable[[CommandHandled], Any]] = None) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not 0 < timeout < math.inf:
            raise ConfigurationError(f"command timeout must be a positive, finite number of "
                                     f"seconds, got {timeout!r}")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ConfigurationError(f"max_pending must be a whole number >= 1 (commands), "
                                     f"got {max_pending!r}")
        self.timeout = float(timeout)
        self.max_pending = max_pending
        self._on_result = on_result
        self._devices: Dict[Tuple[str, str], _Device] = {}
        tables: Dict[str, Optional[FieldTable]] = {}
        for source in sources:
            family, device = str(source.family), str(source.device)
            if family not in tables:
                tables[family] = load_table(family)
            self._devices[(family, device)] = _Device(
                family, device, getattr(source, "client", None), tables[family], frozenset())
        for key, names in (controls or {}).items():
            family, _, device = str(key).partition("/")
            found = self._devices.get((family, device))
            if found is None:
                known = ", ".join(f"{f}/{d}" for f, d in sorted(self._devices)) or "none"
                raise ConfigurationError(f"controls names device {key!r}, which is not "
                                         f"recorded; devices: {known}")
            found.opted_in = frozenset(check_controls(family, list(names),
                                                      f"controls of {key}"))
            if found.opted_in and not found.writes_allowed:
                log.info("%s: controls %s stay read-only: the device's client does not "
                         "allow writes (allow_writes = true under [devices.options])", key,
                         ", ".join(sorted(found.opted_in)))
        self._cond = threading.Condition()
        self._jobs: Deque[_Job] = deque()
        self._running: Optional[str] = None
        self._done = 0
        self._refused = 0
        self._stopping = False
        self._thread: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        return (f"<Commands devices={len(self._devices)} done={self._done} "
                f"refused={self._refused}>")

    # ------------------------------------------------------------------ what is controllable
    def _entity(self, family: str, device: str, channel: str, field: str
                ) -> Tuple[Optional[_Device], Optional[Entity], str]:
        """The device and entity of a command, or None and why not."""
        try:
            dev, entity = self._resolve(family, device, channel, field)
        except PyBurnerKitError as exc:
            return self._devices.get((family, device)), None, str(exc)
        return dev, entity, ""

    def _resolve(self, family: str, device: str, channel: str, field: str
                 ) -> Tuple[_Device, Entity]:
        """The device and entity of a command.

        :raises ConfigurationError: no such device, not a setting or an action, no client.
        :raises WriteNotAllowedError: the client does not allow writes, or the control is not
            safe and was not listed in the device's ``controls``.
        """
        dev = self._devices.get((family, device))
        if dev is None:
            raise ConfigurationError(f"no device {family}/{device} is recorded here")
        entity = lookup(dev.table, field, channel)
        if entity is None or entity.control is None:
            raise ConfigurationError(f"{family}/{device}: {field} is not a setting or an "
                                     f"action")
        if dev.client is None:
            raise ConfigurationError(f"{family}/{device}: this source has no client to send "
                                     f"it to")
        if not dev.writes_allowed:
            raise WriteNotAllowedError(f"{family}/{device}: writes are not allowed (set "
                                       f"allow_writes = true under [devices.options] to "
                                       f"control it)")
        if not entity.control.safe and not opt_in_names(channel, field) & dev.opted_in:
            raise WriteNotAllowedError(f"{family}/{device}: {field} is not a safe control; "
                                       f"list it in the device's controls to allow it")
        return dev, entity

    def prepare(self, family: str, device: str, channel: str, field: str,
                payload: str) -> Callable[[], Any]:
        """Check and convert one command as :meth:`submit` does, without running it: the
        returned call (no argument) runs the client's own method on the calling thread and
        returns the confirmed value (see :meth:`submit`), or raises what the library raised
        (a value outside limits, the device's refusal, a timeout...). Nothing is queued; the
        router's thread is not used, so a caller (the HTTP service) runs commands for
        different devices side by side. Never blocks; any thread.

        :raises ConfigurationError: no such device, a field that is not a setting or an
            action, a payload that does not fit the entity (nothing was sent).
        :raises WriteNotAllowedError: the device's client does not allow writes, or the field
            is not a safe control and was not listed in the device's ``controls``.
        """
        dev, entity = self._resolve(family, device, channel, field)
        return self._plan(dev, entity, channel, field, str(payload))

    def controllable(self, family: str, device: str, channel: str, field: str) -> bool:
        """Whether a command for this field would be tried (never blocks, any thread): the
        device's client allows writes, its family's table gives the field a control, and
        the control is ``safe`` or listed in the device's ``controls``."""
        return self._entity(family, device, channel, field)[1] is not None

    def controllable_fields(self, family: str, device: str) -> List[str]:
        """The exact field names of the table that :meth:`controllable` accepts for this
        device, sorted (pattern keys of a table are not listed)."""
        dev = self._devices.get((family, device))
        if dev is None or dev.table is None:
            return []
        return [name for name in controllable_names(dev.table)
                if self.controllable(family, device, "", name)]

    # ------------------------------------------------------------------ submitting
    def submit(self, family: str, device: str, channel: str, field: str, payload: str,
               reply: Reply) -> None:
        """Queue one command; returns at once (any thread).

        ``payload`` is the command's text as Home Assistant sends it: a number for a
        ``number`` (and a ``climate``'s target temperature), an option for a ``select``,
        ``ON``/``OFF`` for a ``switch``, ``PRESS`` for a ``button``, ``heat``/``off`` for a
        ``climate``'s mode.

        ``reply(ok, message, confirmed)`` is called exactly once, never under a lock of the
        router: ``ok`` True with ``message`` ``""`` and ``confirmed`` the field's value on
        the device after the call, as the recorder records the field (a number; for a select
        the enum member, or the number labelled with its option, ``samples.Labelled``; a
        switch's ``on``/``off`` value),
        the mode for a climate's mode command, None for a button; or ``ok`` False with the
        reason (the library's own message for a value outside limits, writes not allowed,
        the device's refusal, a timeout; or why the command was not tried) and None.

        Which thread replies: a command that was queued, on the commands thread
        (``pyburnerkit-recorder-commands``), after it ran (or when :meth:`stop` refuses it);
        a command refused before it could be queued (not controllable, a payload that does
        not fit the entity, a full queue, a closed router), at once on the calling thread,
        before ``submit()`` returns, so that a refusal is never held up behind a slow command.
        A reply that raises is logged.
        """
        key = (family, device, channel, field)
        dev, entity, why = self._entity(family, device, channel, field)
        call: Optional[Callable[[], Any]] = None
        if dev is not None and entity is not None:
            try:
                call = self._plan(dev, entity, channel, field, str(payload))
            except ConfigurationError as exc:
                why = _text(exc)
            except Exception as exc:  # a table or client this router cannot use: a bug
                log.error("command %s/%s %s could not be prepared", family, device, field,
                          exc_info=True)
                why = f"command failed: {type(exc).__name__}: {_text(exc)}"
        with self._cond:
            if self._stopping:
                why = "the recorder is closing: command not run"
                call = None
            elif call is not None and len(self._jobs) >= self.max_pending:
                call = None
                why = (f"{self.max_pending} commands are already waiting; command refused "
                       f"(send it again later)")
            if call is None:
                self._refused += 1
            else:
                self._jobs.append(_Job(key, reply, call))
                self._ensure_thread()
                self._cond.notify_all()
        if call is None:
            job = _Job(key, reply, None, why)
            log.warning("command %s refused: %s", job.label, why)
            self._finish(job, False, why, None)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=_THREAD_NAME, daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ converting
    def _plan(self, dev: _Device, entity: Entity, channel: str, field: str,
              payload: str) -> Callable[[], Any]:
        """The call that carries out ``payload``, with its reply's confirmed value.

        :raises ConfigurationError: the payload does not fit the entity (nothing is sent).
        """
        control = entity.control
        assert control is not None
        text = payload.strip()
        kind = entity.kind
        if kind == "climate":
            number = _number(text, None)
            if number is None:
                return self._climate_mode(dev, entity, channel, field, text.lower())
            kind = "number"
        if kind == "button":
            if text.upper() != "PRESS":
                raise ConfigurationError(f"{field} is a button: the command is PRESS, got "
                                         f"{_shown(field, text)}")
            return self._call(dev, control, channel, field, _NO_VALUE, lambda v: None)
        if kind == "switch":
            word = text.upper()
            if word not in ("ON", "OFF"):
                raise ConfigurationError(f"{field} is a switch: the command is ON or OFF, got "
                                         f"{_shown(field, text)}")
            value = control.on if word == "ON" else control.off
            return self._call(dev, control, channel, field, value, lambda v: v)
        if kind == "select":
            choices: Mapping[str, Any] = (control.choices if control.choices is not None
                                          else {o: o for o in entity.options})
            if text not in choices:
                raise ConfigurationError(f"{field}: {_shown(field, text)} is not one of "
                                         f"{', '.join(choices)}")
            return self._call(dev, control, channel, field, choices[text],
                              lambda v: _option(choices, v))
        # a number, or a setting some table gave another kind: a number when it reads as one
        value = _number(text, field) if kind == "number" else _number(text, None)
        return self._call(dev, control, channel, field, text if value is None else value,
                          lambda v: v)

    def _climate_mode(self, dev: _Device, entity: Entity, channel: str, field: str,
                      mode: str) -> Callable[[], Any]:
        """A climate's ``heat``/``off``: the control the entity's ``links`` name for the
        mode (``{"heat": "Start", "off": "Stop"}``: a button is pressed, a switch turned
        ON for heat and OFF for off), else the client's ``run(on)`` verb with the climate
        control's ``on``/``off`` values."""
        control = entity.control
        assert control is not None
        if mode not in CLIMATE_MODES:
            raise ConfigurationError(f"{field}: {_shown(field, mode)} is neither a "
                                     f"temperature nor a mode ({', '.join(CLIMATE_MODES)})")
        linked = entity.links.get(mode)
        if linked:
            target = lookup(dev.table, linked, channel)
            if target is None or target.control is None:
                raise ConfigurationError(f"{field}: the {mode} mode's control {linked!r} is "
                                         f"not in the {dev.family} table")
            if not target.control.safe and not opt_in_names(channel, linked) & dev.opted_in:
                raise ConfigurationError(f"{field}: the {mode} mode needs {linked}, which is "
                                         f"not a safe control; list it in the device's "
                                         f"controls to allow it")
            if target.kind == "button" or target.control.argument == "none":
                value: Any = _NO_VALUE
            else:
                value = target.control.on if mode == "heat" else target.control.off
            return self._call(dev, target.control, channel, linked, value, lambda v: mode)
        run = Control("run", on=control.on, off=control.off, safe=control.safe)
        return self._call(dev, run, channel, field, control.on if mode == "heat"
                          else control.off, lambda v: mode)

    def _call(self, dev: _Device, control: Control, channel: str, field: str, value: Any,
              state: Callable[[Any], Any]) -> Callable[[], Any]:
        """A closure that calls the control's method with ``value`` and returns the confirmed
        state (``state`` turns the device's value into the entity's terms)."""
        client = dev.client
        method = getattr(client, control.method, None)
        if not callable(method):
            raise ConfigurationError(f"{dev.family}/{dev.device}: the client has no method "
                                     f"{control.method}() for {field}")
        dialect = _DIALECTS.get(dev.family, _DEFAULT_DIALECT)
        argument = control.argument
        args: Tuple[Any, ...] = ()
        kwargs: Dict[str, Any] = {}
        if argument == "path":
            args = dialect.path_args(client, channel, field)
        elif argument.startswith("path:"):
            args = dialect.template_args(client, channel, field, argument[len("path:"):])
        if value is not _NO_VALUE and argument != "none":
            if argument == "value" or argument == "path" or argument.startswith("path:"):
                args += (value,)
            else:
                kwargs[argument] = value
        if _takes_timeout(method):
            kwargs["timeout"] = self.timeout
        timeout = self.timeout

        def run() -> Any:
            result = method(*args, **kwargs)
            if value is _NO_VALUE:
                return state(None)
            back = dialect.read_back(client, channel, field, result, timeout)
            return state(value if back is _UNKNOWN else back)
        return run

    # ------------------------------------------------------------------ the thread
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._stopping:
                    self._cond.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
                if self._stopping:  # queued before stop(): refused, not run
                    job = _Job(job.key, job.reply, None,
                               "the recorder is closing: command not run")
                    self._refused += 1
                else:
                    self._running = job.label
                    # a waiter for "a command is running" (wait_for) learns it now, not only
                    # when the command has ended
                    self._cond.notify_all()
            if job.call is None:
                self._finish(job, False, job.message, None)
            else:
                ok, message, confirmed = self._run(job)
                with self._cond:
                    self._running = None
                    if ok:
                        self._done += 1
                    else:
                        self._refused += 1
                self._finish(job, ok, message, confirmed)
            with self._cond:
                self._cond.notify_all()

    def _finish(self, job: _Job, ok: bool, message: str, confirmed: Any) -> None:
        """Reply, then tell ``on_result``; neither may stop the commands thread."""
        try:
            job.reply(ok, message, confirmed)
        except Exception:
            log.exception("the reply to command %s raised", job.label)
        if self._on_result is not None:
            try:
                self._on_result(CommandHandled(*job.key, ok, message, confirmed))
            except Exception:
                log.exception("on_result of command %s raised", job.label)

    def _run(self, job: _Job) -> Tuple[bool, str, Any]:
        assert job.call is not None
        try:
            confirmed = job.call()
        except PyBurnerKitError as exc:  # refused by the library or the device, or timed out
            message = _text(exc)
            log.warning("command %s refused: %s", job.label, message)
            return False, message, None
        except TimeoutError as exc:
            message = _text(DeviceTimeoutError(str(exc) or "no answer in time"))
            log.warning("command %s refused: %s", job.label, message)
            return False, message, None
        except Exception as exc:  # a bug (a table naming a wrong argument...): say so, go on
            log.error("command %s failed", job.label, exc_info=True)
            return False, f"command failed: {type(exc).__name__}: {_text(exc)}", None
        log.info("command %s done: %r", job.label, confirmed)
        return True, "", confirmed

    # ------------------------------------------------------------------ status and closing
    def stats(self) -> CommandStats:
        """What was done so far (never blocks; any thread)."""
        with self._cond:
            return CommandStats(self._done, self._refused,
                                len(self._jobs), self._running)

    def wait_for(self, predicate: Callable[["CommandStats"], Any],
                 timeout: Optional[float] = 10.0) -> Any:
        """Block until ``predicate(stats())`` is truthy; re-checked whenever a command starts
        or ends.

        :raises DeviceTimeoutError: not within ``timeout`` seconds.
        :raises RuntimeError: called on the commands thread (from a reply), where it would
            wait for itself.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("Commands.wait_for() was called from a reply, on the commands "
                               "thread it would wait for")
        deadline = Deadline(timeout)
        with self._cond:
            while True:
                result = predicate(CommandStats(self._done, self._refused,
                                                len(self._jobs),
                                                self._running))
                if result:
                    return result
                left = deadline.remaining()
                if left is not None and left <= 0:
                    raise DeviceTimeoutError(f"command condition did not hold within "
                                             f"{timeout:g} s")
                self._cond.wait(left)

    def stop(self) -> None:
        """Take no more commands; those still queued are refused (replied on the commands
        thread). Never blocks; the command running now finishes (closing its client ends it
        at once). Idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def close(self, timeout: Optional[float] = 5.0) -> bool:
        """:meth:`stop`, then wait for the commands thread to end.

        Blocks until the thread ended or ``timeout`` seconds passed (a command on a device
        that does not answer holds it up to the router's ``timeout``; close the device's
        client to end it sooner). Safe from any thread, a reply included (never joins its own
        thread). Idempotent.

        :returns: True when the thread has ended, never started, or is the calling thread (it
            ends when the reply returns); False when it still runs a command.
        """
        self.stop()
        thread = self._thread
        if thread is None:
            return True
        if thread is threading.current_thread():
            return True  # a reply closing us: the thread ends once the reply returns
        thread.join(timeout)
        if thread.is_alive():
            log.warning("the commands thread is still running a command after %s s (%s); it "
                        "ends when the device answers or its client closes", timeout,
                        self._running)
            return False
        return True

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The commands thread once started (None before the first command)."""
        return self._thread


# ------------------------------------------------------------------------------ helpers
class _NoValue:
    def __repr__(self) -> str:
        return "<no value>"


_NO_VALUE: Any = _NoValue()


def _number(text: str, field: Optional[str]) -> Optional[float]:
    """``text`` as a number (a whole one as an ``int``, as the setters of whole-number
    settings want it); None when it is not one and ``field`` is None.

    :raises ConfigurationError: not a finite number, when ``field`` names what needed one.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        if field is None:
            return None
        raise ConfigurationError(f"{field} needs a number, got {_shown(field, text)}")
    if value.is_integer():
        return int(value)
    return value


def _option(choices: Mapping[str, Any], value: Any) -> Any:
    """A select's value on the device as the recorder records an enumeration: the choice
    itself when it is an enum member or text, a number labelled with its option otherwise
    (the value as it is when no option matches)."""
    for option, choice in choices.items():
        if choice == value or (isinstance(value, str) and str(choice) == value):
            if isinstance(choice, (enum.Enum, str)):
                return choice
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and float(value).is_integer():
                return Labelled(int(value), option)
            return choice
    return value


def _shown(field: str, text: str) -> str:
    if is_secret_key(field):
        return "***"
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _text(exc: BaseException) -> str:
    return redact_text(str(exc))


def _takes_timeout(method: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "timeout" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)

