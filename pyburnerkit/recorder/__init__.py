"""Record every device to SQLite (default), PostgreSQL/TimescaleDB and MQTT, losing nothing.

Quick start::

    from pyburnerkit.afterburner import AfterburnerClient
    from pyburnerkit.recorder import Recorder, SQLiteSink

    with Recorder([AfterburnerClient("sim://")], [SQLiteSink("heater.db")]) as rec:
        rec.wait_for(lambda r: r.received >= 100, timeout=30)

    from pyburnerkit.recorder import to_dataframe
    df = to_dataframe("heater.db")          # needs pyburnerkit[pandas]

See ``docs/recorder.rst``.
"""

from typing import TYPE_CHECKING, Any

from .alerts import AlertChanged, AlertRule
from .recorder import (DeviceStateChanged, Recorder, RecorderProgress, RecorderStatus,
                       SamplesReceived, SinkHealthChanged, SinkStats, SpoolStateChanged)
from .samples import FieldMeta, Message, Sample
from .sinks import Sink, SQLiteSink
from .sinks.sqlite import plot_recording, read_samples, to_dataframe
from .adapters.afterburner import AfterburnerSource
from .sources import CallableSource, Source, adapt, register_adapter

if TYPE_CHECKING:  # the real classes for type checkers; at run time they import on first use
    from .config import load_config
    from .sinks.mqtt import MqttSink
    from .sinks.postgres import PostgresSink

__all__ = ["Recorder", "Sample", "Message", "FieldMeta", "Sink", "SQLiteSink", "PostgresSink",
           "MqttSink", "Source", "CallableSource", "AfterburnerSource", "adapt",
           "register_adapter", "AlertRule", "AlertChanged", "SamplesReceived",
           "SinkHealthChanged", "SpoolStateChanged", "DeviceStateChanged", "RecorderProgress",
           "RecorderStatus", "SinkStats",
           "read_samples", "to_dataframe", "plot_recording", "load_config"]


def __getattr__(name: str) -> Any:  # optional backends import lazily
    if name == "PostgresSink":
        from .sinks.postgres import PostgresSink
        return PostgresSink
    if name == "MqttSink":
        from .sinks.mqtt import MqttSink
        return MqttSink
    if name == "load_config":
        from .config import load_config
        return load_config
    raise AttributeError(name)
