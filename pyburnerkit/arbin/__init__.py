"""Arbin battery cyclers over CTI (Console TCP/IP Interface), port 9031.

Quick start against the built-in simulator::

    from pyburnerkit.arbin import CyclerClient

    with CyclerClient("sim://?channels=16") as cycler:      # or "192.168.1.20", "host:9031"
        for status in cycler.read_all_statuses():
            print(status.channel, status.state.text, status.voltage_v)

Channels are 1-based in the API. Credentials may also come from ``ARBIN_CTI_USERNAME`` /
``ARBIN_CTI_PASSWORD`` in the environment or a ``.env`` file (``env_file=``; python-dotenv,
the ``arbin`` extra).
"""

from typing import TYPE_CHECKING, Any

from .models import (AUX_TYPES, AssignResult, AuxOption, AuxReading, ChannelState,
                     ChannelStateChanged, ChannelStatus, CommandAcknowledged, ConnectResult,
                     ContinueResult, CtiVersion, CyclerInfo, GetMVResult, InfoSelection,
                     LoginResult, MetaCode, MetaValueType, SetMVResult, StartResult,
                     StatusSnapshot, StopResult, parse_step_and_cycle)

if TYPE_CHECKING:  # type checkers see the real classes; at runtime they load on first use
    from .client import ChannelClient, CyclerClient
    from .sim import ArbinSim

__all__ = ["CyclerClient", "ChannelClient", "ArbinSim", "ChannelStatus", "ChannelState",
           "CyclerInfo", "AuxReading", "AuxOption", "InfoSelection", "LoginResult",
           "AssignResult", "StartResult", "StopResult", "SetMVResult", "ContinueResult",
           "CtiVersion", "StatusSnapshot", "ChannelStateChanged", "CommandAcknowledged",
           "ConnectResult", "GetMVResult", "MetaCode", "MetaValueType", "AUX_TYPES",
           "parse_step_and_cycle"]


def __getattr__(name: str) -> Any:
    if name in ("CyclerClient", "ChannelClient"):
        from . import client
        return getattr(client, name)
    if name == "ArbinSim":
        from .sim import ArbinSim
        return ArbinSim
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
