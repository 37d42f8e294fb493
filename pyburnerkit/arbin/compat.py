"""pycti-compatible interfaces: port a pycti-arbin script by changing one import.

::

    # from pyctiarbin import CyclerInterface, ChannelInterface
    from pyburnerkit.arbin.compat import CyclerInterface, ChannelInterface
    # from pyctiarbin.messages import Msg
    from pyburnerkit.arbin.compat import Msg
    # from pyctiarbin.arbinspoofer import ArbinSpoofer
    from pyburnerkit.arbin.compat import ArbinSpoofer

Same config keys (``ip_address``, ``port``, ``timeout_s``, ``msg_buffer_size``; plus
``channel``, ``test_name``, ``schedule_name`` for channels), same method names and the same
return shapes: dicts with pycti's keys (status and result codes as their text) and booleans
from the control calls. Like pycti, a failed read returns ``{}`` and a refused command returns
``False``, but the reason is logged at WARNING instead of vanishing.

Control needs an opt-in that pycti does not have: ``'allow_writes': True`` in the channel config
(pycti ignores the extra key, so the config still works there). Without it ``assign_schedule``,
``start_test``, ``stop_test`` and ``set_meta_variable`` raise
:class:`~pyburnerkit.errors.WriteNotAllowedError` and send nothing.

Differences from pycti, all deliberate: the connection is thread-safe and logs in again after a
reconnect; ``ip_address`` in the login dict is dotted text; set-MV codes carry Arbin's meaning;
channel 0 is refused instead of silently meaning "all channels"; a bad ``mv_num`` raises
:class:`~pyburnerkit.errors.ConfigurationError`; ``close()`` and ``with`` release the connection.
"""

from __future__ import annotations

import logging
import os
import struct
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type

from ..errors import (ConfigurationError, ProtocolError, PyBurnerKitError, WriteNotAllowedError,
                      check_range)
from . import codec
from .client import ChannelClient, CyclerClient
from .models import (AUX_TYPES, MV_META_CODES, AssignResult, AuxReading,
                     ChannelStatus, CtiVersion, CyclerInfo, LoginResult, SetMVResult,
                     StartResult, StopResult)
from .sim import SPOOFER_CHANNEL_DEFAULTS, ArbinSpoofer, _state_of, spoofer_login_info

__all__ = ["CyclerInterface", "ChannelInterface", "Msg", "MessageABC", "ArbinSpoofer",
           "login_dict", "status_dict"]

log = logging.getLogger(__name__)

_LOGIN_TEXT = {1: "success", 2: "fail", 3: "already logged in"}


def _config(config: Mapping[str, Any], channel: bool) -> Dict[str, Any]:
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"config must be a dict, got {type(config).__name__}")
    out = dict(config)
    for key in ("ip_address", "port") + (("channel",) if channel else ()):
        if key not in out:
            raise ConfigurationError(f"config is missing {key!r}")
    out.setdefault("timeout_s", 3.0)
    out.setdefault("msg_buffer_size", 4096)
    if channel:
        out.setdefault("test_name", None)
        out.setdefault("schedule_name", None)
        out["allow_writes"] = out.get("allow_writes", False) is True
    return out


def login_dict(info: CyclerInfo) -> Dict[str, Any]:
    """A login feedback as pycti's ``get_login_feedback()`` shapes it."""
    return {
        "header": codec.TOKEN, "msg_length": 8678 + len(info.picture),
        "command_code": codec.LOGIN_FEEDBACK, "extended_command_code": 0,
        "result": _LOGIN_TEXT.get(int(info.result), "should not see this"),
        "ip_address": info.ip_address, "cycler_sn": info.serial_number, "note": info.note,
        "nick_name": info.nickname, "location": info.location,
        "emergency_contact": info.emergency_contact, "other_comments": info.other_comments,
        "email": info.email, "call": info.call, "itac": info.itac, "version": int(info.version),
        "allow_control": int(info.allow_control), "num_channels": info.num_channels,
        "user_type": info.user_type, "picture_length": len(info.picture),
    }


def status_dict(status: ChannelStatus, *, msg_length: Optional[int] = None,
                number_of_channels: int = 1) -> Dict[str, Any]:
    """A channel status as pycti's ``read_channel_status()`` shapes it (wire channel 0-based)."""
    if msg_length is None:
        msg_length = codec.HEADER_SIZE + 4 + len(codec.encode_channel_record(status)) + 2
    out: Dict[str, Any] = {
        "header": codec.TOKEN, "msg_length": msg_length,
        "command_code": codec.CHANNEL_INFO_FEEDBACK, "extended_command_code": 0,
        "number_of_channels": number_of_channels, "channel": status.channel - 1,
        "status": status.state.text, "comm_failure": int(status.comm_failure),
        "schedule": status.schedule, "testname": status.test_name,
        "exit_condition": status.exit_condition,
        "step_and_cycle_format": status.step_and_cycle, "barcode": status.barcode,
        "can_config_name": status.can_config_name, "smb_config_name": status.smb_config_name,
        "master_channel": status.master_channel - 1, "test_time_s": status.test_time_s,
        "step_time_s": status.step_time_s, "voltage_v": status.voltage_v,
        "current_a": status.current_a, "power_w": status.power_w,
        "charge_capacity_ah": status.charge_capacity_ah,
        "discharge_capacity_ah": status.discharge_capacity_ah,
        "charge_energy_wh": status.charge_energy_wh,
        "discharge_energy_wh": status.discharge_energy_wh,
        "internal_resistance_ohm": status.internal_resistance_ohm,
        "dvdt_vbys": status.dvdt_v_per_s, "acr_ohm": status.acr_ohm, "aci_ohm": status.aci_ohm,
        "aci_phase_degrees": status.aci_phase_deg,
    }
    for name in AUX_TYPES:
        out[f"aux_{name}_count"] = len(status.aux.get(name, ()))
    out["bms_count"] = len(status.bms)
    out["smb_count"] = len(status.smb)
    for name in AUX_TYPES:
        readings = status.aux.get(name, ())
        out[f"aux_{name}"] = [r.value for r in readings]
        out[f"aux_{name}_dt"] = [r.dt for r in readings]
    return out


def _env_path(env_path: Optional[str]) -> str:
    # pycti's default is <cwd>/.env; a missing file is fine (plain environment variables).
    return os.path.join(os.getcwd(), ".env") if env_path is None else os.fspath(env_path)


class CyclerInterface:
    """pycti's ``CyclerInterface``: connects and logs in on construction."""

    _client_class: Any = CyclerClient

    def __init__(self, config: Mapping[str, Any], env_path: Optional[str] = None) -> None:
        self._client: Any = None
        self.config = _config(config, channel=isinstance(self, ChannelInterface))
        from .client import resolve_credentials
        creds = resolve_credentials(env_file=_env_path(env_path), missing_file_ok=True)
        user, secret = creds.reveal()
        timeout = float(self.config["timeout_s"])
        self._client = self._make_client(user, secret, timeout)
        self._client.connect()
        self.__login_feedback = login_dict(self._client.info)
        self.__num_channels: int = self._client.channel_count

    def _make_client(self, user: str, secret: str, timeout: float) -> Any:
        return CyclerClient(str(self.config["ip_address"]), port=int(self.config["port"]),
                            username=user, password=secret, timeout=timeout,
                            connect_timeout=timeout, aux=False)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config['ip_address']}:{self.config['port']}>"

    def get_num_channels(self) -> int:
        return self.__num_channels

    def get_login_feedback(self) -> Dict[str, Any]:
        return dict(self.__login_feedback)

    def read_channel_status(self, channel: int) -> Dict[str, Any]:
        """The 1-based ``channel`` as pycti's dict, or ``{}`` (reason logged) on any error."""
        try:
            status = self._client.read_status(channel)
        except PyBurnerKitError as exc:
            log.warning("read_channel_status(%r) failed: %s", channel, exc)
            return {}
        return status_dict(status)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> "CyclerInterface":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        try:
            if client is not None and not client.closed:
                client.close(timeout=0)
        except Exception:  # garbage collection may run on any thread, even at shutdown
            pass


class ChannelInterface(CyclerInterface):
    """pycti's ``ChannelInterface``: one channel (``config['channel']``, 1-based)."""

    def __init__(self, config: Mapping[str, Any], env_path: Optional[str] = None) -> None:
        channel = config.get("channel") if isinstance(config, Mapping) else None
        if isinstance(channel, bool) or not isinstance(channel, int) or channel < 1:
            raise ConfigurationError(f"config['channel'] must be a 1-based channel number, "
                                     f"got {channel!r}")
        super().__init__(config, env_path)

    def _make_client(self, user: str, secret: str, timeout: float) -> Any:
        return ChannelClient(str(self.config["ip_address"]), port=int(self.config["port"]),
                             channel=int(self.config["channel"]),
                             allow_writes=self.config["allow_writes"], username=user,
                             password=secret, timeout=timeout, connect_timeout=timeout,
                             aux=False)

    def read_channel_status(self, channel: Optional[int] = None) -> Dict[str, Any]:
        return super().read_channel_status(self.config["channel"] if channel is None
                                           else channel)

    def _guard_write(self, what: str) -> None:
        if not self.config["allow_writes"]:
            raise WriteNotAllowedError(
                f"{what} changes the cycler; add 'allow_writes': True to the ChannelInterface "
                "config to allow it (nothing was sent)", device="arbin",
                endpoint=f"{self.config['ip_address']}:{self.config['port']}")

    def _attempt(self, what: str, call: Any) -> bool:
        try:
            call()
        except (ConfigurationError, WriteNotAllowedError):
            raise  # a mistake in the calling script, not a cycler's refusal
        except PyBurnerKitError as exc:
            log.warning("%s failed: %s", what, exc)
            return False
        return True

    def assign_schedule(self) -> bool:
        """Assign ``config['schedule_name']`` to the channel; True on success.

        Blocks until the cycler answered (at most ``timeout_s``). If this call times out, the
        device may still apply the write later; it is never retried automatically.

        :returns: False (reason logged) when the name is missing or the cycler refused or did
            not answer.
        :raises WriteNotAllowedError: the config lacks ``'allow_writes': True``.
        :raises ConfigurationError: the name is longer than 199 characters.
        """
        self._guard_write("assign_schedule")
        name = self.config.get("schedule_name")
        if not name:
            log.warning("assign_schedule: no schedule_name in the config")
            return False
        return self._attempt("assign_schedule", lambda: self._client.assign_schedule(name))

    def start_test(self) -> bool:
        """Assign the schedule, then start ``config['test_name']``; True when both succeeded.

        Both names are checked before anything is sent. Blocks until the cycler answered each
        (at most ``timeout_s`` apiece). If this call times out, the device may still apply the
        write later; it is never retried automatically.

        :returns: False (reason logged) when a name is missing or the cycler refused or did
            not answer.
        :raises WriteNotAllowedError: the config lacks ``'allow_writes': True``.
        :raises ConfigurationError: a name is longer than its CTI field (71 / 199 characters).
        """
        self._guard_write("start_test")
        name = self.config.get("test_name")
        if not name:
            log.warning("start_test: no test_name in the config")
            return False
        # The test name must fit before the assign goes out: never half a start.
        codec.encode_request(codec.StartRequest(name, (0,)))
        if not self.assign_schedule():
            return False
        return self._attempt("start_test", lambda: self._client.start(name))

    def stop_test(self) -> bool:
        """Stop the channel's test; True on success.

        Needs ``'allow_writes': True`` like every command (a stop ends a running test).
        Blocks until the cycler answered (at most ``timeout_s``). If this call times out, the
        device may still apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: the config lacks ``'allow_writes': True``.
        """
        self._guard_write("stop_test")
        return self._attempt("stop_test", lambda: self._client.stop())

    def set_meta_variable(self, mv_num: int, mv_value: float) -> bool:
        """Set MV_UD``mv_num`` (1..16) of the running test to ``mv_value``; True on success.

        Blocks until the cycler answered (at most ``timeout_s``). If this call times out, the
        device may still apply the write later; it is never retried automatically.

        :raises WriteNotAllowedError: the config lacks ``'allow_writes': True``.
        :raises ConfigurationError: ``mv_num`` outside 1..16 or ``mv_value`` not a finite
            32-bit float.
        """
        self._guard_write("set_meta_variable")
        return self._attempt("set_meta_variable",
                             lambda: self._client.set_meta_variable(mv_num, mv_value))


# ---------------------------------------------------------------------- pycti's Msg layer
def _header(frame: bytes) -> Dict[str, Any]:
    length, command, extended = struct.unpack_from("<III", frame, 8)
    return {"header": codec.TOKEN, "msg_length": length, "command_code": command,
            "extended_command_code": extended}


def _flag_text(flag: bool) -> str:
    # pycti reads one-byte flags as text with NULs stripped: '' for 0, '\x01' for 1.
    return "\x01" if flag else ""


def _flag(name: str, value: Any) -> bool:
    if value in ("", "\x00", b"", b"\x00", 0, False, None):
        return False
    if value in ("\x01", b"\x01", 1, True):
        return True
    raise ConfigurationError(f"{name} must be 0/1 (or pycti's '' / '\\x01'), got {value!r}")


def _result(table: Type[Any], value: Any, name: str = "result") -> Any:
    """A result code from its number or its text (ours, or pycti's 'success'/'fail')."""
    if isinstance(value, str):
        wanted = value.strip().lower()
        for code in range(256):
            member = table(code)
            if member.known and wanted in (member.text.lower(), member.name.lower()):
                return member
        if table is LoginResult and wanted in _PYCTI_LOGIN:
            return LoginResult(_PYCTI_LOGIN[wanted])
        raise ConfigurationError(f"{name} {value!r} is not a {table.__name__} text")
    return table(int(check_range(name, value, 0, 0xFFFFFFFF, integer=True)))


_PYCTI_LOGIN = {text: code for code, text in _LOGIN_TEXT.items()}
_PYCTI_LOGIN["should not see this"] = 0


class MessageABC:
    """pycti's message base class: ``pack(dict) -> bytearray`` and ``unpack(bytes) -> dict``
    with pycti's keys, built on the family codec (``pyburnerkit.arbin.codec``).

    ``message`` names the codec class a pycti message stands for; ``msg_length`` and
    ``command_code`` are pycti's class constants (the length field of the usual frame).

    Deliberate differences: a bad value raises :class:`~pyburnerkit.errors.ConfigurationError`
    (pycti logged and returned an empty bytearray); a malformed frame raises
    :class:`~pyburnerkit.errors.ProtocolError` (pycti warned and decoded what it could);
    feedbacks are packed with real MITS Pro framing (pycti's were 2 bytes longer); result
    codes decode to Arbin's meaning (pycti swapped set-MV's 0x11 and 0x12). Unknown keys are
    logged and ignored, as in pycti.
    """

    msg_length = 0
    command_code = 0
    message: Any = None

    @classmethod
    def defaults(cls) -> Dict[str, Any]:
        """What :meth:`pack` uses for every key the caller leaves out."""
        return {}

    @classmethod
    def pack(cls, msg_values: Optional[Mapping[str, Any]] = None) -> bytearray:
        """The frame for ``msg_values`` over :meth:`defaults`.

        :raises ConfigurationError: a value that does not fit its field.
        """
        values = cls.defaults()
        for key, value in (msg_values or {}).items():
            if key in values:
                values[key] = value
            elif key not in ("header", "msg_length", "command_code",
                             "extended_command_code"):
                log.warning("Key name %s was not found in %s", key, cls.__qualname__)
        return bytearray(cls._encode(values))

    @classmethod
    def unpack(cls, msg_bin: bytes) -> Dict[str, Any]:
        """The frame's fields with pycti's keys.

        :raises ProtocolError: the frame is malformed or is another message.
        """
        frame = bytes(msg_bin)
        out = _header(frame)
        out.update(cls._decode(frame))
        return out

    @classmethod
    def _encode(cls, values: Dict[str, Any]) -> bytes:
        raise NotImplementedError

    @classmethod
    def _decode(cls, frame: bytes) -> Dict[str, Any]:
        raise NotImplementedError


def _request(frame: bytes, kind: Type[Any]) -> Any:
    message = codec.decode_request(frame)
    if not isinstance(message, kind):
        raise ProtocolError(f"expected a {kind.__name__}, got {type(message).__name__}")
    return message


def _feedback(frame: bytes, kind: Type[Any]) -> Any:
    message = codec.decode_feedback(frame)
    if not isinstance(message, kind):
        raise ProtocolError(f"expected a {kind.__name__}, got {type(message).__name__}")
    return message


class _CommandServer(MessageABC):
    """The common 128-byte feedback: channel, result, reserved."""

    msg_length = 128
    message = codec.CommandFeedback
    request_command = 0
    results: Type[Any] = AssignResult

    @classmethod
    def defaults(cls) -> Dict[str, Any]:
        return {"channel": 0, "result": "success", "reserved": ""}

    @classmethod
    def _encode(cls, values: Dict[str, Any]) -> bytes:
        channel = int(check_range("channel", values["channel"], -0x80000000, 0x7FFFFFFF,
                                  integer=True))
        result = _result(cls.results, values["result"])
        return codec.encode_feedback(codec.command_feedback(cls.request_command, channel,
                                                            int(check_range(
                                                                "result", result, 0, 255,
                                                                integer=True))))

    @classmethod
    def _decode(cls, frame: bytes) -> Dict[str, Any]:
        message = _feedback(frame, codec.CommandFeedback)
        if message.command != cls.command_code:
            raise ProtocolError(f"expected command 0x{cls.command_code:08X}, got "
                                      f"0x{message.command:08X}")
        return {"channel": message.channel_index, "result": message.result.text,
                "reserved": ""}


def _status_from_values(values: Mapping[str, Any]) -> ChannelStatus:
    """A :class:`ChannelStatus` from pycti's channel-info keys (wire indexes 0-based)."""
    channel = int(check_range("channel", values["channel"], 0, codec.MAX_CHANNELS - 1,
                              integer=True))
    master = int(check_range("master_channel", values["master_channel"], 0,
                             codec.MAX_CHANNELS - 1, integer=True))
    aux: Dict[str, Tuple[AuxReading, ...]] = {}
    for name in AUX_TYPES:
        readings = list(values.get(f"aux_{name}", ()))
        rates = list(values.get(f"aux_{name}_dt", ()))
        if len(rates) != len(readings):
            raise ConfigurationError(f"aux_{name} has {len(readings)} values but aux_{name}_dt "
                                     f"has {len(rates)}")
        if readings:
            aux[name] = tuple(AuxReading(float(v), float(d)) for v, d in zip(readings, rates))
    numbers = {field: float(check_range(key, values[key], -codec.F32_MAX, codec.F32_MAX))
               for key, field in _STATUS_NUMBERS.items()}
    texts = {}
    for key, field in _STATUS_TEXTS.items():
        if not isinstance(values[key], str):
            raise ConfigurationError(f"{key} must be text, got {type(values[key]).__name__}")
        texts[field] = values[key]
    fields: Dict[str, Any] = dict(numbers, **texts)
    return ChannelStatus(channel=channel + 1, state=_state_of(values["status"]),
                         comm_failure=bool(values["comm_failure"]), master_channel=master + 1,
                         aux=aux, **fields)


_STATUS_TEXTS = {"schedule": "schedule", "testname": "test_name",
                 "exit_condition": "exit_condition",
                 "step_and_cycle_format": "step_and_cycle", "barcode": "barcode",
                 "can_config_name": "can_config_name", "smb_config_name": "smb_config_name"}
_STATUS_NUMBERS = {
    "test_time_s": "test_time_s", "step_time_s": "step_time_s", "voltage_v": "voltage_v",
    "current_a": "current_a", "power_w": "power_w",
    "charge_capacity_ah": "charge_capacity_ah",
    "discharge_capacity_ah": "discharge_capacity_ah", "charge_energy_wh": "charge_energy_wh",
    "discharge_energy_wh": "discharge_energy_wh",
    "internal_resistance_ohm": "internal_resistance_ohm", "dvdt_vbys": "dvdt_v_per_s",
    "acr_ohm": "acr_ohm", "aci_ohm": "aci_ohm", "aci_phase_degrees": "aci_phase_deg"}


def _ip_text(value: Any) -> str:
    text = str(value)
    if text.count(".") == 3:
        return text
    if len(text) == 4:  # pycti's form: the four raw bytes as characters
        return ".".join(str(ord(c) & 0xFF) for c in text)
    raise ConfigurationError(f"ip_address must be dotted IPv4 text, got {value!r}")


class Msg:
    """pycti's ``Msg`` namespace: ``Msg.<Message>.Client`` (requests) and ``.Server``
    (feedbacks), each a :class:`MessageABC` over the codec class in its ``message``."""

    class Login:
        class Client(MessageABC):
            msg_length = 74
            command_code = codec.LOGIN
            message = codec.LoginRequest

            @classmethod
            def defaults(cls) -> Dict[str, Any]:
                return {"username": "not a username", "password": "not a password"}

            @classmethod
            def _encode(cls, values: Dict[str, Any]) -> bytes:
                return codec.encode_request(codec.LoginRequest(values["username"],
                                                               values["password"]))

            @classmethod
            def _decode(cls, frame: bytes) -> Dict[str, Any]:
                message = _request(frame, codec.LoginRequest)
                return {"username": message.username, "password": message.password}

        class Server(MessageABC):
            msg_length = 8678
            command_code = codec.LOGIN_FEEDBACK
            message = codec.LoginFeedback
            login_result_dict = {0: "should not see this", **_LOGIN_TEXT}

            @classmethod
            def defaults(cls) -> Dict[str, Any]:
                return {k: v for k, v in login_dict(spoofer_login_info(0)).items()
                        if k not in ("header", "msg_length", "command_code",
                                     "extended_command_code")}

            @classmethod
            def _encode(cls, values: Dict[str, Any]) -> bytes:
                def number(key: str) -> int:
                    return int(check_range(key, values[key], 0, 0xFFFFFFFF, integer=True))

                info = CyclerInfo(
                    result=_result(LoginResult, values["result"]),
                    ip_address=_ip_text(values["ip_address"]),
                    serial_number=values["cycler_sn"], note=values["note"],
                    nickname=values["nick_name"], location=values["location"],
                    emergency_contact=values["emergency_contact"],
                    other_comments=values["other_comments"], email=values["email"],
                    call=values["call"], itac=number("itac"),
                    version=CtiVersion(number("version")),
                    allow_control=bool(number("allow_control")),
                    num_channels=number("num_channels"), user_type=number("user_type"))
                return codec.encode_feedback(codec.LoginFeedback(info))

            @classmethod
            def _decode(cls, frame: bytes) -> Dict[str, Any]:
                out = login_dict(_feedback(frame, codec.LoginFeedback).info)
                for key in ("header", "msg_length", "command_code", "extended_command_code"):
                    out.pop(key)
                return out

    class ChannelInfo:
        class Client(MessageABC):
            msg_length = 50
            command_code = codec.CHANNEL_INFO
            message = codec.ChannelInfoRequest

            @classmethod
            def defaults(cls) -> Dict[str, Any]:
                return {"channel": 0, "channel_selection": 1, "aux_options": 0, "reserved": ""}

            @classmethod
            def _encode(cls, values: Dict[str, Any]) -> bytes:
                return codec.encode_request(codec.ChannelInfoRequest(
                    values["channel"], values["channel_selection"], values["aux_options"]))

            @classmethod
            def _decode(cls, frame: bytes) -> Dict[str, Any]:
                m = _request(frame, codec.ChannelInfoRequest)
                return {"channel": m.channel_index, "channel_selection": m.selection,
                        "aux_options": m.aux_options, "reserved": ""}

        class Server(MessageABC):
            msg_length = 1779
            command_code = codec.CHANNEL_INFO_FEEDBACK
            message = codec.ChannelInfoFeedback

            @classmethod
            def defaults(cls) -> Dict[str, Any]:
                status = ChannelStatus(channel=1, **SPOOFER_CHANNEL_DEFAULTS)
                return {k: v for k, v in status_dict(status).items()
                        if k not in ("header", "msg_length", "command_code",
                                     "extended_command_code", "number_of_channels")
                        and not k.endswith("_count")}

            @classmethod
            def _encode(cls, values: Dict[str, Any]) -> bytes:
                return codec.encode_feedback(codec.ChannelInfoFeedback(
                    (_status_from_values(values),)))

            @classmethod
            def _decode(cls, frame: bytes) -> Dict[str, Any]:
                message = _feedback(frame, codec.ChannelInfoFeedback)
                if not message.statuses:
                    raise ProtocolError("channel info feedback with no channel record")
                out = status_dict(message.statuses[0], msg_length=len(frame),
                                  number_of_channels=len(message.statuses))
                for key in ("header", "msg_length", "command_code", "extended_command_code"):
                    out.pop(key)
                return out

            @classmethod
            def unpack_all(cls, msg_bin: bytes) -> List[Dict[str, Any]]:
                """Every record of a (multi-channel) feedback, each as pycti's dict (pycti
                read only the first; issue #24)."""
                frame = bytes(msg_bin)
                message = _feedback(frame, codec.ChannelInfoFeedback)
                return [status_dict(s, msg_length=len(frame),
                                    number_of_channels=len(message.statuses))
                        for s in message.statuses]

    class AssignSchedule:
        class Client(MessageABC):
            msg_length = 659
            command_code = codec.ASSIGN_SCHEDULE
            message = codec.AssignScheduleRequest

            @classmethod
            def defaults(cls) -> Dict[str, Any]:
                out: Dict[str, Any] = {"channel": 0, "assign_all_channels": "",
                                       "schedule": "fake_schedule", "test_capacity_ah": 0.0,
                                       "barcode": ""}
                out.update({f"user_variable_{i}": 0.0 for i in range(1, 17)})
                out["reserved"] = ""
                return out

            @classmethod
            def _encode(cls, values: Dict[str, Any]) -> bytes:
                return codec.encode_request(codec.AssignScheduleRequest(
                    values["channel"], values["schedule"], values["test_capacity_ah"],
                    values["barcode"],
                    tuple(values[f"user_variable_{i}"] for i in range(1, 17)),
                    _flag("assign_all_channels", values["assign_all_channels"])))

            @classmethod
            def _decode(cls, frame: bytes) -> Dict[str, Any]:
                m = _request(frame, codec.AssignScheduleRequest)
                out: Dict[str, Any] = {"channel": m.channel_index,
                                       "assign_all_channels": _flag_text(m.assign_all),
                                       "schedule": m.schedule,
                                       "test_capacity_ah": m.test_capacity_ah,
                                       "barcode": m.barcode}
                out.update({f"user_variable_{i + 1}": v for i, v in enumerate(m.mv_initial)})
                out["reserved"] = ""
                return out

        class Server(_CommandServer):
            command_code = codec.ASSIGN_SCHEDULE_FEEDBACK
            request_command = codec.ASSIGN_SCHEDULE
            results = AssignResult

    class StartSchedule:
        class Client(MessageABC):
            msg_length = 160
            command_code = codec.START_SCHEDULE
            message = codec.StartRequest

            @classmethod
            def defaults(cls) -> Dict[str, Any]:
                return {"test_name": "fake_testname", "num_channels_to_start": 1, "channel": 0}

            @classmethod
            def _encode(cls, values: Dict[str, Any]) -> bytes:
                if values["num_channels_to_start"] != 1:
                    raise ConfigurationError(
                        "num_channels_to_start must be 1, as in pycti's layout (got "
                        f"{values['num_channels_to_start']!r}); ChannelClient.start("
                        "channels=[...]) starts several")
                return codec.encode_request(codec.StartRequest(values["test_name"],
                                                               (values["channel"],)))

            @classmethod
            def _decode(cls, frame: bytes) -> Dict[str, Any]:
                m = _request(frame, codec.StartRequest)
                return {"test_name": m.test_name, "num_channels_to_start":
                        len(m.channel_indexes),
                        "channel": m.channel_indexes[0] if m.channel_indexes else 0}

        class Server(_CommandServer):
            command_code = codec.START_SCHEDULE_FEEDBACK
            request_command = codec.START_SCHEDULE
            results = StartResult

    class StopSchedule:
        class Client(MessageABC):
            msg_length = 116
            command_code = codec.STOP_SCHEDULE
            message = codec.StopRequest

            @classmethod
            def defaults(cls) -> Dict[str, Any]:
                return {"channel": 0, "stop_all_channels": "", "reserved": ""}

            @classmethod
            def _encode(cls, values: Dict[str, Any]) -> bytes:
                return codec.encode_request(codec.StopRequest(
                    values["channel"], _flag("stop_all_channels", values["stop_all_channels"])))

            @classmethod
            def _decode(cls, frame: bytes) -> Dict[str, Any]:
                m = _request(frame, codec.StopRequest)
                return {"channel": m.channel_index,
                        "stop_all_channels": _flag_text(m.all_channels), "reserved": ""}

        class Server(_CommandServer):
            command_code = codec.STOP_SCHEDULE_FEEDBACK
            request_command = codec.STOP_SCHEDULE
            results = StopResult

    class SetMetaVariable:
        class Client(MessageABC):
            msg_length = 62
            command_code = codec.SET_MV
            message = codec.SetMVRequest
            #: MV_UD number (1..16) to its meta code, as pycti's ``mv_channel_codes``
            mv_channel_codes = dict(MV_META_CODES)

            @classmethod
            def defaults(cls) -> Dict[str, Any]:
                return {"channel": 0, "mv_type": codec.MV_TYPE_IV,
                        "mv_meta_code": MV_META_CODES[1], "reserved_1": "",
                        "mv_value_type": codec.MV_VALUE_FLOAT, "mv_data": 0.0,
                        "reserved_2": ""}

            @classmethod
            def _encode(cls, values: Dict[str, Any]) -> bytes:
                return codec.encode_request(codec.SetMVRequest(
                    values["channel"], values["mv_meta_code"], values["mv_data"],
                    values["mv_type"], values["mv_value_type"]))

            @classmethod
            def _decode(cls, frame: bytes) -> Dict[str, Any]:
                m = _request(frame, codec.SetMVRequest)
                return {"channel": m.channel_index, "mv_type": m.mv_type,
                        "mv_meta_code": m.meta_code, "reserved_1": "",
                        "mv_value_type": m.value_type, "mv_data": m.value, "reserved_2": ""}

        class Server(_CommandServer):
            command_code = codec.SET_MV_FEEDBACK
            request_command = codec.SET_MV
            results = SetMVResult
