"""Tiny in-test sources (real Source subclasses, no mocks) and helpers."""

from __future__ import annotations

import threading
from typing import Any, List, Optional

from pyburnerkit.recorder import Source
from pyburnerkit.recorder.sources import CallableSource


class PushSource(Source):
    """A push source the test drives: ``push({"field": value})`` from any thread."""

    kind = "push"

    def __init__(self, device: str = "push1", family: str = "testdev") -> None:
        super().__init__(family, device)
        self.started = threading.Event()

    def start(self, emit: Any, on_state: Any) -> None:
        super().start(emit, on_state)
        self.started.set()
        self.state("connected")

    def push(self, values: dict, channel: str = "", units: Optional[dict] = None,
             kind: str = "") -> None:
        """Emit ``values``; ``kind`` is the device kind on the channel (as Mate3 sources say)."""
        units = units or {}
        self.emit([(channel, k, v, units.get(k, ""), kind) for k, v in values.items()])


class Counter:
    """A poll function producing a steady stream: ``count`` grows by one per poll."""

    def __init__(self, fields: int = 2, stop_after: Optional[int] = None) -> None:
        self.count = 0
        self.fields = fields
        self.stop_after = stop_after
        self.lock = threading.Lock()

    def __call__(self) -> dict:
        with self.lock:
            if self.stop_after is not None and self.count >= self.stop_after:
                raise ConnectionError("device went quiet (test)")
            self.count += 1
            n = self.count
        out = {"energy_wh": float(n), "voltage_v": 12.0 + (n % 10) / 10}
        for i in range(2, self.fields):
            out[f"extra{i}_a"] = float(i)
        return out


def counter_source(device: str = "meter1", interval: float = 0.005, **kw: Any
                   ) -> "tuple[CallableSource, Counter]":
    counter = Counter(**kw)
    return CallableSource(counter, family="testdev", device=device, interval=interval), counter


def collect(recorder: Any) -> List[Any]:
    """Every sample the recorder received, in order (via its SamplesReceived events)."""
    from pyburnerkit.recorder import SamplesReceived
    got: List[Any] = []
    lock = threading.Lock()

    def on(event: Any) -> None:
        with lock:
            got.extend(event.samples)

    recorder.subscribe(on, SamplesReceived)
    return got


class Subscriber:
    """A plain paho-mqtt subscriber (what Home Assistant or any consumer would be)."""

    def __init__(self, port: int, topic: str = "#", *, client_id: str = "",
                 clean: bool = True, username: Optional[str] = None,
                 password: Optional[str] = None, **tls: Any) -> None:
        import paho.mqtt.client as mqtt
        self.messages: List[Any] = []
        self.cond = threading.Condition()
        self.topic = topic
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean)
        self.subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(**tls)
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            self.close()
            raise AssertionError("the test subscriber could not subscribe")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.cond:
            self.messages.append((msg.topic, msg.payload, msg.retain))
            self.cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> Any:
        import time
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                result = predicate(list(self.messages))
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"MQTT condition not met within {timeout} s; "
                                         f"{len(self.messages)} messages seen")
                self.cond.wait(left)

    def topics(self) -> List[str]:
        with self.cond:
            return [m[0] for m in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        # paho keeps its wake-up socket pair until garbage collection, which the leak check
        # would then report
        reset = getattr(self.client, "_reset_sockets", None)
        if reset is not None:
            reset()


def gate_sink(name: str = "gate"):
    """A real in-memory sink the test can take down and bring back: ``sink.up.clear()`` makes
    ``open()`` and ``write()`` fail like a lost server; ``sink.up.set()`` brings it back.
    ``sink.stored`` maps uid -> sample (so a duplicate write is visible in ``sink.writes``)."""
    from pyburnerkit.recorder import Sample, Sink

    class _Gate(Sink):
        def __init__(self) -> None:
            self.name = name
            self.up = threading.Event()
            self.up.set()
            self.stored: dict = {}
            self.writes = 0
            self.lock = threading.Lock()

        def open(self) -> None:
            if not self.up.is_set():
                raise ConnectionError(f"{name} is down (test)")

        def write(self, items: Any) -> None:
            if not self.up.is_set():
                raise ConnectionError(f"{name} went down (test)")
            with self.lock:
                for item in items:
                    if isinstance(item, Sample):
                        self.writes += 1
                        self.stored[item.uid] = item

    return _Gate()
