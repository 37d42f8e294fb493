"""Incremental status updates (issue 16): each frame converts only the keys it carries, and the
result is the status a full rebuild from the merged keys gives."""

from __future__ import annotations

import random
import threading
from typing import Any, Dict, List

import pytest

from pyburnerkit.afterburner import AfterburnerClient, StatusChanged, codec
from pyburnerkit.afterburner.models import HeaterStatus
from pyburnerkit.errors import ProtocolError

#: one value per status key, of the kind the firmware sends (aliases left out: a frame from
#: one firmware carries one spelling)
VALUES: Dict[str, List[Any]] = {
    key: {"_as_float": [12.5, 3, "7.25", float("nan")], "_as_int": [1, 20, "4"],
          "_as_str": ["abc", 5], "_as_bool": [0, 1]}.get(spec[1].__name__, [])
    for key, spec in codec.STATUS_KEYS.items()
    if key not in ("ThermostatOvertemp", "ThermostatUndertemp")
}
VALUES.update({"TempMode": [0, 1], "RunState": [0, 5, 17], "ErrorState": [0, 3, 42],
               "Thermostat": [0, 1, 2], "ThermostatMethod": [0, 1, 2, 3],
               "BluewireStat": ["", "OK"]})


def same(a: HeaterStatus, b: HeaterStatus) -> bool:
    def norm(status: HeaterStatus) -> Dict[str, Any]:
        out = {}
        for name, value in vars(status).items():
            out[name] = "nan" if isinstance(value, float) and value != value else value
        out["raw"] = {k: ("nan" if isinstance(v, float) and v != v else v)
                      for k, v in dict(status.raw).items()}
        return out
    return norm(a) == norm(b)


def test_incremental_status_equals_a_full_rebuild() -> None:
    rng = random.Random(3)
    keys = [k for k, v in VALUES.items() if v]
    merged: Dict[str, Any] = {}
    status = HeaterStatus()
    for step in range(400):
        size = min(len(keys), rng.choice([1, 2, 5, 60]))
        frame = {k: rng.choice(VALUES[k]) for k in rng.sample(keys, size)}
        if step % 7 == 0:
            frame["MPasswd"] = f"secret-{step}"      # masked in raw
            frame[f"NewKey{step % 3}"] = step        # unknown keys are kept in raw
        previous = status
        status = codec.update_status(status, frame)
        merged.update(frame)
        assert same(status, codec.build_status(merged)), step
        assert status is not previous
    assert "secret" not in repr(dict(status.raw))
    assert status.raw["MPasswd"] == codec.MASK


def test_a_bad_value_builds_nothing_and_leaves_the_previous_status_alone() -> None:
    status = codec.update_status(HeaterStatus(), {"TempDesired": 21, "RunState": 5})
    raw_before = dict(status.raw)
    with pytest.raises(ProtocolError):
        codec.update_status(status, {"TempDesired": 23, "RunState": "oops"})
    assert status.desired_temperature == 21 and dict(status.raw) == raw_before


def test_events_carry_what_changed_in_order_and_the_status_is_complete() -> None:
    """Against the simulator: every setter's StatusChanged shows its value, events arrive in
    order on the events thread, and the final status equals a full rebuild of what the
    client received."""
    seen: List[Any] = []
    threads: List[str] = []
    done = threading.Event()
    with AfterburnerClient("sim://?tick=0", allow_writes=True, timeout=10) as heater:
        def on_status(ev: StatusChanged) -> None:
            threads.append(threading.current_thread().name)
            if "TempDesired" in ev.changed:
                seen.append(ev.changed["TempDesired"])
                if ev.changed["TempDesired"] == 29:
                    done.set()
        heater.subscribe(on_status, StatusChanged)
        targets = [20, 25, 22, 29]
        for value in targets:
            assert heater.set_desired_temperature(value).desired_temperature == value
        assert done.wait(10)
        assert [v for v in seen if v in targets][-len(targets):] == targets
        assert all(name.endswith("-events") for name in threads)
        session = heater._session
        assert session is not None
        assert same(heater.status, codec.build_status(session.keys))
