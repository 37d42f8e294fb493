"""Rich display and to_dict(): every family's client and state objects, from real simulators.

The HTML is parsed back with the standard library's HTMLParser, so the test checks the table a
notebook shows (cells, units, escaping), not the markup's spelling.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from html.parser import HTMLParser
from typing import Any, Callable, Dict, List, Tuple

import pytest
from IPython.lib.pretty import pretty

from pyburnerkit.afterburner import AfterburnerClient
from pyburnerkit.afterburner.models import ErrorState, HeaterStatus, RunState
from pyburnerkit.arbin.client import CyclerClient
from pyburnerkit.de1 import DE1Client
from pyburnerkit.mate3.client import Mate3Client
from pyburnerkit.mate3.models import EnumValue, Flags
from pyburnerkit.scale import SkaleClient
from pyburnerkit.types import ConnectionState, ConnectionStateChanged, Model
from pyburnerkit.victron.client import VictronMonitor
from pyburnerkit.victron.models import ItemValue, ServiceInfo

PASSWORD = "Sup3r-S3cret-pw"


class Cells(HTMLParser):
    """The text of every table row of an HTML block, as lists of cell texts."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.rows: List[List[str]] = []
        self.texts: List[str] = []
        self._cell: List[str] = []
        self._in_cell = False
        self._in_style = False
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._in_cell, self._cell = True, []
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self._in_cell = False
            self.rows[-1].append("".join(self._cell))
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            return
        self.texts.append(data)
        if self._in_cell:
            self._cell.append(data)

    def row(self, name: str) -> List[str]:
        found = [r for r in self.rows if r and r[0] == name]
        assert found, f"no row {name!r} in {[r[0] for r in self.rows if r]}"
        return found[0]


# family -> (make the client, what its state object is, a row the display must show)
FAMILIES: Dict[str, Tuple[Callable[[], Any], Callable[[Any], Any], str, str]] = {
    "afterburner": (lambda: AfterburnerClient("sim://"), lambda c: c.status,
                    "input_voltage_v", "V"),
    "mate3": (lambda: Mate3Client("sim://"), lambda c: c.system, "battery_voltage", "Volts"),
    "de1": (lambda: DE1Client("sim://"), lambda c: c.temperatures, "water_heater_c", "°C"),
    "scale": (lambda: SkaleClient("sim://"), lambda c: c.info, "firmware", ""),
    "arbin": (lambda: CyclerClient("sim://?channels=2", username="lab", password=PASSWORD),
              lambda c: c.info, "num_channels", ""),
    "victron": (lambda: VictronMonitor("sim://"),
                lambda c: next(iter(c._cache.snapshot().values())).value, "/Dc/0/Voltage", ""),
}


def plain_types_only(value: Any) -> None:
    """Fail on anything json would accept only by accident (enums are ints, say)."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert key is None or type(key) in (str, int, float, bool), key
            plain_types_only(item)
    elif isinstance(value, list):
        for item in value:
            plain_types_only(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), (type(value), value)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_client_and_state_display_with_units_and_to_dict(family: str) -> None:
    make, state_of, row_name, unit = FAMILIES[family]
    client = make()
    try:
        idle = Cells(client._repr_html_())
        assert "idle" in idle.texts  # the badge: displayable before connect, no I/O
        client.connect()
        if family == "victron":
            client.wait_for(lambda c: any("battery" in t for t in c._cache.snapshot()),
                            timeout=20)
        html = client._repr_html_()
        cells = Cells(html)
        assert "connected" in cells.texts
        assert cells.row("endpoint")[1] == client.endpoint
        state = state_of(client)
        if family == "victron":
            state = next(s.value for t, s in client._cache.snapshot().items()
                         if "battery" in t)
        assert isinstance(state, Model)
        # the state object displays on its own too, and the client shows the same row
        own = Cells(state._repr_html_())
        shown = [r for r in own.rows if r and r[0].endswith(row_name)]
        assert shown and shown[0][1] not in ("", "—"), own.rows
        assert shown[0][2] == unit
        assert any(r and r[0].endswith(row_name) for r in cells.rows)
        text = pretty(client)
        assert client.endpoint in text and "connected" in text and row_name in text
        assert pretty(state).splitlines()[0] in (type(state).__name__,
                                                  state._display_title())
        data = state.to_dict()
        plain_types_only(data)
        json.dumps(data)
        assert PASSWORD not in html + text + json.dumps(data)
    finally:
        client.close()
    assert "closed" in Cells(client._repr_html_()).texts


def test_to_dict_names_enums_and_nests_dataclasses() -> None:
    with AfterburnerClient("sim://") as heater:
        status = heater.status
    data = status.to_dict()
    assert data["run_state"] == status.run_state.name == "STOPPED"
    assert data["bluewire"] == dataclasses.asdict(status.bluewire)  # a nested frozen dataclass
    assert set(data) == {f.name for f in dataclasses.fields(HeaterStatus)}
    with Mate3Client("sim://") as mate3:
        system = mate3.system
    plain = system.to_dict()
    json.dumps(plain)
    cc = next(iter(plain["charge_controllers"].values()))
    assert isinstance(cc["values"]["battery_voltage"]["value"], float)
    enum_fields = [v for dev in system.blocks() for v in dev[1].values.values()
                   if isinstance(v.value, (EnumValue, Flags))]
    assert enum_fields
    for fv in enum_fields[:20]:
        got = fv.to_dict()["value"]
        assert got == (fv.value.label if isinstance(fv.value, EnumValue)
                       else list(fv.value.names) + ([f"0x{fv.value.unknown_bits:x}"]
                                                    if fv.value.unknown_bits else []))
    # events are models too
    event = ConnectionStateChanged(ConnectionState.CONNECTED, ConnectionState.CONNECTING,
                                   error=ConnectionResetError("reset by peer"))
    assert event.to_dict()["state"] == "CONNECTED"
    assert event.to_dict()["error"] == "ConnectionResetError: reset by peer"


def test_secrets_are_hidden_and_html_is_escaped() -> None:
    status = HeaterStatus(run_state=RunState.RUNNING, error_state=ErrorState.OVERHEAT,
                          wifi_ssid="<b>cabin</b> & co",
                          raw={"MQTTpassword": PASSWORD, "TempCurrent": 21})
    assert status.to_dict()["raw"] == {"MQTTpassword": "<hidden>", "TempCurrent": 21}
    html = status._repr_html_()
    assert "<b>cabin</b>" not in html and "&lt;b&gt;cabin&lt;/b&gt; &amp; co" in html
    assert Cells(html).row("wifi_ssid")[1] == "<b>cabin</b> & co"
    assert Cells(html).row("run_state")[1] == "RUNNING"  # the text would only repeat it
    assert Cells(html).row("error_state")[1] == "OVERHEAT (E-05: Overheat)"
    assert PASSWORD not in html + pretty(status)
    service = ServiceInfo("com.victronenergy.battery.<x>", ":1.7", 0, {
        "/Settings/Password": ItemValue(PASSWORD, PASSWORD),
        "/CustomName": ItemValue("<script>alert(1)</script>", "<script>alert(1)</script>"),
        "/Dc/0/Voltage": ItemValue(12.5, "12.50V")})
    html = service._repr_html_()
    assert "<script>" not in html and PASSWORD not in html
    cells = Cells(html)
    assert cells.row("/Dc/0/Voltage")[1] == "12.50V"
    assert cells.row("/Settings/Password")[1] == "<hidden>"
    assert cells.row("/CustomName")[1] == "<script>alert(1)</script>"  # shown, as text
    assert service.to_dict()["values"]["/Settings/Password"] == "<hidden>"


def test_every_model_class_has_to_dict_and_display() -> None:
    import importlib
    missing = []
    for family in ("afterburner", "arbin", "mate3", "victron", "de1", "scale"):
        module = importlib.import_module(f"pyburnerkit.{family}.models")
        for name, obj in vars(module).items():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and \
                    obj.__module__ == module.__name__:
                if not (hasattr(obj, "to_dict") and hasattr(obj, "_repr_html_")
                        and hasattr(obj, "_repr_pretty_")):
                    missing.append(f"{family}.{name}")
    assert missing == []


def test_float_precision_and_enum_text_in_the_display() -> None:
    from pyburnerkit._core.display import format_value, unit_of
    assert format_value(3.5999999046325684) == "3.6"
    assert format_value(RunState.STOPPED) == "STOPPED (Stopped/Ready)"

    class Plain(enum.Enum):
        A = 1
    assert format_value(Plain.A) == "A"
    assert [unit_of(n) for n in ("flow_ml_s", "temperature_c", "dvdt_v_per_s", "status",
                                 "weight_g", "c")] == ["mL/s", "°C", "V/s", "", "g", ""]
