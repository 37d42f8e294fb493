"""Where samples go: SQLite (default), PostgreSQL/TimescaleDB, MQTT (+ Home Assistant discovery).

Every sink implements :class:`~pyburnerkit.recorder.sinks.base.Sink`; the recorder runs each on
its own worker thread with a bounded on-disk spool, so a sink that is down never blocks sources.
Optional backends import lazily: ``PostgresSink`` needs ``pyburnerkit[postgres]``, ``MqttSink``
needs ``pyburnerkit[mqtt]``.
"""

from typing import TYPE_CHECKING, Any

from .base import Sink, SinkWorker
from .sqlite import SQLiteSink

__all__ = ["Sink", "SinkWorker", "SQLiteSink", "PostgresSink", "MqttSink"]


if TYPE_CHECKING:  # checkers see the real classes; at runtime they import on first use
    from .mqtt import MqttSink
    from .postgres import PostgresSink


def __getattr__(name: str) -> Any:
    if name == "PostgresSink":
        from .postgres import PostgresSink
        return PostgresSink
    if name == "MqttSink":
        from .mqtt import MqttSink
        return MqttSink
    raise AttributeError(name)
