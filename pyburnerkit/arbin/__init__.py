"""Arbin battery cyclers over CTI (Console TCP/IP Interface), port 9031.

Quick start against the built-in simulator::

    from pyburnerkit.arbin import ArbinSim, CyclerClient

    with ArbinSim(channels=16, username="u", password="p").start() as sim:
        with CyclerClient("127.0.0.1", sim.port, username="u", password="p") as cycler:
            for status in cycler.read_all_statuses():
                print(status.channel, status.state.text, status.voltage_v)

Channels are 1-based in the API. Credentials may also come from ``ARBIN_CTI_USERNAME`` /
``ARBIN_CTI_PASSWORD`` in the environment or a ``.env`` file (``env_file=``; python-dotenv,
the ``arbin`` extra).
"""

from .models import (AUX_TYPES, AssignResult, AuxOption, AuxReading, ChannelState,
                     ChannelStateChanged, ChannelStatus, CommandAcknowledged, ContinueResult,
                     CtiVersion, CyclerInfo,
                     InfoSelection, LoginResult, SetMVResult, StartResult, StatusSnapshot,
                     StopResult, parse_step_and_cycle)

__all__ = ["CyclerClient", "ChannelClient", "ArbinSim", "ChannelStatus", "ChannelState",
           "CyclerInfo", "AuxReading", "AuxOption", "InfoSelection", "LoginResult",
           "AssignResult", "StartResult", "StopResult", "SetMVResult", "ContinueResult",
           "CtiVersion", "StatusSnapshot", "ChannelStateChanged", "CommandAcknowledged",
           "AUX_TYPES",
           "parse_step_and_cycle"]


def __getattr__(name: str):
    if name in ("CyclerClient", "ChannelClient"):
        from . import client
        return getattr(client, name)
    if name == "ArbinSim":
        from .sim import ArbinSim
        return ArbinSim
    raise AttributeError(name)
