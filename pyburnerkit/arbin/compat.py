"""pycti-compatible interfaces: port a pycti-arbin script by changing one import.

::

    # from pyctiarbin import CyclerInterface, ChannelInterface
    from pyburnerkit.arbin.compat import CyclerInterface, ChannelInterface

Same config keys (``ip_address``, ``port``, ``timeout_s``, ``msg_buffer_size``; plus
``channel``, ``test_name``, ``schedule_name`` for channels), same method names and the same
return shapes: dicts with pycti's keys (status and result codes as their text) and booleans
from the control calls. Like pycti, a failed read returns ``{}`` and a refused command returns
``False``, but the reason is logged at WARNING instead of vanishing.

Control needs an opt-in that pycti does not have: ``'allow_writes': True`` in the channel config
(pycti ignores the extra key, so the config still works there). Without it ``assign_schedule``,
``start_test``, ``stop_test`` and ``set_meta_variable`` raise :class:`WriteNotAllowedError` and
send nothing.

Differences from pycti, all deliberate: the connection is thread-safe and logs in again after a
reconnect; ``ip_address`` in the login dict is dotted text; set-MV codes carry Arbin's meaning;
channel 0 is refused instead of silently meaning "all channels"; a bad ``mv_num`` raises
:class:`ConfigurationError`; ``close()`` and ``with`` release the connection.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Mapping, Optional

from ..errors import ConfigurationError, PyBurnerKitError, WriteNotAllowedError
from . import codec
from .client import ChannelClient, CyclerClient
from .models import AUX_TYPES, ChannelStatus, CyclerInfo

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
