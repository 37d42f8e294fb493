"""The fake localsettings against spec section 3, driven by a plain dbus-python client.

The client here is a loop-less private ``dbus.bus.BusConnection`` making blocking calls, the
way a third-party script would; the simulator answers on its own thread.
"""

from __future__ import annotations

from typing import Any, List

import dbus
import dbus.bus
import pytest

from pyburnerkit.victron import VictronMonitor
from pyburnerkit.victron.sim import VictronSim

SETTINGS = "com.victronenergy.settings"
IFACE = "com.victronenergy.Settings"
BUSITEM = "com.victronenergy.BusItem"


def call(conn: Any, path: str, iface: str, member: str, sig: str = "", *args: Any) -> Any:
    return conn.call_blocking(SETTINGS, path, iface, member, sig, args, timeout=5)


def add(conn: Any, *entries: dict, on: str = "/") -> List[dict]:
    return [dict(r) for r in call(conn, on, IFACE, "AddSettings", "aa{sv}",
                                  dbus.Array(entries, signature="a{sv}"))]


def test_add_settings_error_codes(raw: Any) -> None:
    res = add(raw,
              {"path": "/Settings/A/Int", "default": dbus.Int32(5), "min": dbus.Int32(0),
               "max": dbus.Int32(10)},
              {"path": "/Settings/A/_x", "default": dbus.Int32(1)},
              {"path": "/Settings/A/Bool", "default": dbus.Boolean(True)},
              {"default": dbus.Int32(1)},
              {"path": "/Settings/A/Int", "default": dbus.String("x")},
              {"path": "/Settings/Devices/u1/ClassAndVrmInstance", "default": "bad"},
              {"path": "/Settings/A/Range", "default": dbus.Int32(50), "min": dbus.Int32(0),
               "max": dbus.Int32(10)},
              {"path": "/Settings/A", "default": dbus.Int32(1)},
              {"path": "/Other/X", "default": dbus.Int32(1)})
    assert [int(r["error"]) for r in res] == [0, -2, -3, -4, -5, -6, -7, -8, -9]
    assert "path" not in res[3]                       # InvalidPath: no path echoed
    assert int(res[0]["value"]) == 5 and "value" not in res[1]


def test_relative_paths_on_a_group_and_legacy_add_setting(raw: Any) -> None:
    res = add(raw, {"path": "B/F", "default": dbus.Double(1.5)}, on="/Settings")
    assert int(res[0]["error"]) == 0
    assert float(call(raw, "/Settings/B/F", BUSITEM, "GetValue")) == 1.5
    code = call(raw, "/", IFACE, "AddSetting", "ssvsvv", "Settings/Legacy", "Level",
                dbus.Int32(3), "i", dbus.Int32(0), dbus.Int32(5))
    assert code == 0
    assert int(call(raw, "/Settings/Legacy/Level", BUSITEM, "GetValue")) == 3
    assert int(call(raw, "/Settings/Legacy/Level", BUSITEM, "GetMax")) == 5
    group = call(raw, "/Settings/Legacy", BUSITEM, "GetValue")
    assert dict(group) == {"Level": 3}                # relative names on a group
    items = call(raw, "/", BUSITEM, "GetItems")
    assert set(items["/Settings/Legacy/Level"]) >= {"Value", "Text", "Min", "Max", "Default"}


def test_setvalue_limits_and_types(raw: Any) -> None:
    add(raw, {"path": "/Settings/C/I", "default": dbus.Int32(5), "min": dbus.Int32(0),
              "max": dbus.Int32(10)}, {"path": "/Settings/C/S", "default": "a"})
    assert call(raw, "/Settings/C/I", BUSITEM, "SetValue", "v", dbus.Int32(7)) == 0
    assert call(raw, "/Settings/C/I", BUSITEM, "SetValue", "v", dbus.Int32(11)) == -1
    assert call(raw, "/Settings/C/I", BUSITEM, "SetValue", "v", dbus.String("x")) == -1
    assert call(raw, "/Settings/C/S", BUSITEM, "SetValue", "v", dbus.String("long text")) == 0
    assert int(call(raw, "/Settings/C/I", BUSITEM, "GetValue")) == 7
    assert int(call(raw, "/Settings/C/S", BUSITEM, "GetMin")) == 0   # no limits on strings


def test_instance_allocation_and_setvalue_moves_to_a_free_number(raw: Any) -> None:
    p1 = "/Settings/Devices/a/ClassAndVrmInstance"
    p2 = "/Settings/Devices/b/ClassAndVrmInstance"
    r = add(raw, {"path": p1, "default": "tank:20"}, {"path": p2, "default": "tank:20"})
    assert [str(x["value"]) for x in r] == ["tank:20", "tank:21"]
    assert call(raw, p2, BUSITEM, "SetValue", "v", dbus.String("tank:20")) == 0
    assert str(call(raw, p2, BUSITEM, "GetValue")) == "tank:21"      # still not a duplicate
    with pytest.raises(dbus.exceptions.DBusException, match="Python.TypeError"):
        call(raw, p1, BUSITEM, "SetDefault")     # localsettings' quirk (spec 2.4)
    assert str(call(raw, p1, BUSITEM, "GetValue")) == "tank:20"


def test_one_properties_changed_per_setting_and_removal(sim: VictronSim, raw: Any) -> None:
    with VictronMonitor(sim.address, allow_writes=True) as mon:
        mon.settings.add([("/Settings/D/X", 1), ("/Settings/D/Y", 2)])
        add(raw, {"path": "/Settings/D/X", "default": dbus.Int32(1)})
        call(raw, "/Settings/D/X", BUSITEM, "SetValue", "v", dbus.Int32(9))
        assert mon.wait_for_value(SETTINGS, "/Settings/D/X", lambda v: v == 9, timeout=5) == 9
        result = call(raw, "/Settings", IFACE, "RemoveSettings", "as",
                      dbus.Array(["D/Y", "D/Nope"], signature="s"))
        assert [int(c) for c in result] == [0, -1]
        assert mon.wait_for_value(SETTINGS, "/Settings/D/Y", lambda v: v is None,
                                  timeout=5) is None
    with pytest.raises(dbus.exceptions.DBusException, match="UnknownObject"):
        call(raw, "/Settings/D/Y", BUSITEM, "GetValue")
