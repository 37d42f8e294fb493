"""pyDE1's HTTP conventions over real HTTP: /version, the timestamp header, pyDE1's documented
example responses, and the early refusals (404, 405, 411, 413, malformed JSON, wrong types)."""

from __future__ import annotations

import sys
import time

from pyburnerkit.service.pyde1_http import Pyde1App

from .conftest import Bench, Server


def stamp_of(response: object) -> float:
    headers = getattr(response, "headers")
    return float(headers["x-pyde1-timestamp"])


def test_version_document(api: Server) -> None:
    before = time.time()
    r = api.get("/version")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    doc = r.json()
    assert doc["resource_version"] == "5.0.0"
    assert doc["mapping_version"] == "7.0.0"
    assert doc["platform"] == sys.platform
    assert doc["python"] == sys.version
    assert doc["python_info"]["major"] == sys.version_info.major
    assert doc["module_versions"]["pyburnerkit"] is not None
    assert "waitress" in doc["module_versions"]
    assert before <= stamp_of(r) <= time.time()


def test_timestamp_header_on_every_kind_of_answer(api: Server) -> None:
    answers = [api.get("/de1/state"), api.get("/de1/nothing"), api.get("/de1/mode"),
               api.patch("/de1/control/espresso", raw=b"{nope"),
               api.patch("/scale/display", {"display_on": "yes"}),
               api.get("/thermometer")]
    assert [a.status_code for a in answers] == [200, 404, 405, 400, 400, 418]
    for answer in answers:
        assert stamp_of(answer) > 0
    status, headers, _ = api.raw_request(
        b"PUT /de1/mode HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status == 411 and float(headers["x-pyde1-timestamp"]) > 0


def test_pyde1_documented_examples(api: Server, bench: Bench) -> None:
    """pyDE1's docs/api_http.rst 'Example Responses' (0 mm included: the library's refill
    limit is 0..70 mm, as pyDE1's)."""
    ok = api.patch("/de1/setting/start_fill_level", {"start_fill_level": 7})
    assert (ok.status_code, ok.json(), ok.text) == (200, [], "[]\n")
    assert bench.de1.water_levels is not None
    assert bench.de1.water_levels.start_fill_level_mm == 7.0
    assert api.get("/de1/setting/start_fill_level").json() == {"start_fill_level": 7.0}

    bad_type = api.patch("/de1/setting/start_fill_level", {"start_fill_level": "0.0"})
    assert bad_type.status_code == 400
    assert bad_type.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert bad_type.text == ("DE1APITypeError('Expected int value at start_fill_level:, "
                             "not \"0.0\"')")

    malformed = api.patch("/de1/setting/start_fill_level", raw=b"{ start_fill_level: 0.0 }")
    assert malformed.status_code == 400
    assert malformed.text.startswith(
        "JSONDecodeError('Expecting property name enclosed in double quotes: line 1 column 3")

    zero = api.patch("/de1/setting/start_fill_level", {"start_fill_level": 0})
    assert (zero.status_code, zero.json()) == (200, [])
    assert bench.de1.water_levels.start_fill_level_mm == 0.0
    above = api.patch("/de1/setting/start_fill_level", {"start_fill_level": 71})
    assert above.status_code == 400
    assert "ConfigurationError" in above.text and "71 mm" in above.text \
        and "0..70 mm" in above.text
    # PUT has PATCH's meaning here (pyDE1's docs show 501; see the module's choices)
    put = api.put("/de1/setting/start_fill_level", {"start_fill_level": 5})
    assert (put.status_code, put.json()) == (200, [])
    assert bench.de1.water_levels.start_fill_level_mm == 5.0


def test_unknown_resources_are_404(api: Server) -> None:
    for path in ("/de1/nothing", "/de1/", "/scale/weight", "/version/x"):
        r = api.get(path)
        assert r.status_code == 404, path
        assert r.text == f"Unrecognized resource GET {path} HTTP/1.1"
    assert Pyde1App.handles("/de1/nothing") and Pyde1App.handles("/version")
    assert Pyde1App.handles("/log/pyde1.log") and Pyde1App.handles("/thermometer/id")
    assert not Pyde1App.handles("/api/v1/devices") and not Pyde1App.handles("/")


def test_methods_the_resource_lacks_are_405(api: Server, bench: Bench) -> None:
    r = api.get("/de1/mode")
    assert r.status_code == 405
    assert r.text == "GET not permitted for Resource.DE1_MODE"
    assert r.headers["Allow"] == "PATCH, PUT"
    assert api.put("/de1/state", {"state": "Idle"}).status_code == 405
    assert api.patch("/de1/profile", {"x": 1}).status_code == 405
    assert api.put("/version", {}).status_code == 405
    assert api.get("/scan").status_code == 405
    assert api.get("/de1/profiles").status_code == 405
    import requests
    deleted = requests.delete(api.url + "/de1/control/espresso", timeout=30)
    assert deleted.status_code == 405
    assert deleted.headers["Allow"] == "GET, PATCH, PUT"
    posted = requests.post(api.url + "/de1/mode", data=b'{"mode": "Sleep"}', timeout=30)
    assert posted.status_code == 405
    assert bench.de1.state is not None  # nothing was asked of the DE1


def test_missing_content_length_is_411(api: Server) -> None:
    before = api.get("/de1/control/espresso").json()
    status, _, body = api.raw_request(b"PATCH /de1/control/espresso HTTP/1.1\r\nHost: t\r\n"
                                      b"Connection: close\r\n\r\n")
    assert (status, body) == (411, b"Missing Content-Length header")
    assert api.get("/de1/control/espresso").json() == before


def test_bodies_over_the_limit_are_413(api: Server) -> None:
    before = api.get("/de1/control/espresso").json()
    padding = " " * (16 * 1024)
    big = ('{"stop_at_time": 20' + padding + "}").encode()
    r = api.patch("/de1/control/espresso", raw=big)
    assert r.status_code == 413 and r.text.startswith("Patch is too large")
    assert api.get("/de1/control/espresso").json() == before
    at_limit = ('{"stop_at_time": 20}' + " " * (16 * 1024 - 20)).encode()
    assert len(at_limit) == 16 * 1024
    assert api.patch("/de1/control/espresso", raw=at_limit).status_code == 200
    assert api.get("/de1/control/espresso").json()["stop_at_time"] == 20
    api.patch("/de1/control/espresso", {"stop_at_time": None})
    # firmware takes up to 1 MiB: 20 KiB reaches the firmware check (400), 1 MiB + 1 does not
    assert api.put("/de1/firmware", raw=b"\x00" * (20 * 1024)).status_code == 400
    assert api.put("/de1/firmware", raw=b"\x00" * (1024 * 1024 + 1)).status_code == 413
    assert api.put("/de1/profile", raw=b" " * (16 * 1024 + 1)).status_code == 413


def test_json_shape_and_type_checks(api: Server) -> None:
    before = api.get("/de1/control/espresso").json()
    cases = {
        b"[1, 2]": 'DE1APITypeError("Validate: Mapping and patch inconsistent',
        b"": "JSONDecodeError(",
        b"\xff\xfe": "JSONDecodeError(",
        b'{"nope": 1}': "DE1APIAttributeError('No mapping found for nope')",
        b'{"stop_at_weight": true}': "DE1APITypeError('Expected Optional[float] value at "
                                     "stop_at_weight:, not true')",
        b'{"disable_auto_tare": 1}': "DE1APITypeError('Expected bool value at "
                                     "disable_auto_tare:",
        b'{"move_on_weight": [1, "2"]}': "DE1APITypeError('Expected weights value at "
                                         "move_on_weight:",
        # a valid key first does not get applied when a later one is refused by the checks
        b'{"stop_at_weight": 40, "last_drops_minimum_time": null}':
            "DE1APITypeError('Expected float value at last_drops_minimum_time:, not null')",
    }
    for body, start in cases.items():
        r = api.patch("/de1/control/espresso", raw=body)
        assert r.status_code == 400, body
        assert r.text.startswith(start), (body, r.text)
    assert api.get("/de1/control/espresso").json() == before
    # an int is a float (pyDE1's rule); a float is not an int
    assert api.patch("/de1/control/espresso", {"first_drops_threshold": 1}).status_code == 200
    assert api.patch("/de1/setting/fan_threshold", {"temperature": 45.5}).status_code == 400
    api.patch("/de1/control/espresso", {"first_drops_threshold": 0.0})


def test_read_only_and_unknown_keys(api: Server) -> None:
    r = api.patch("/de1/id", {"name": "mine"})
    assert (r.status_code, r.text) == (400, "DE1APIAttributeError('Unable to write name:')")
    r = api.patch("/de1/setting", {"fan_threshold": {"bogus": 1}})
    assert r.text == "DE1APIAttributeError('No mapping found for fan_threshold:bogus')"
    r = api.patch("/de1", {"setting": {"fan_threshold": 3}})
    assert r.status_code == 400 and r.text.startswith("DE1APITypeError('Expected an object")
    assert api.patch("/de1/feature_flags", {}).json() == []
    assert api.patch("/de1/feature_flags", {"feature_flags": "x"}).status_code == 400


def test_writes_not_allowed_are_403_and_change_nothing(readonly_api: Server,
                                                       bench: Bench) -> None:
    fan = bench.de1.registers["fan_threshold"]
    r = readonly_api.patch("/de1/setting/fan_threshold", {"temperature": 33})
    assert r.status_code == 403
    assert r.text.startswith("WriteNotAllowedError(") and "allow_writes" in r.text
    assert bench.de1.read_setting("fan_threshold") == fan
    before = readonly_api.get("/de1/control/espresso").json()
    assert readonly_api.patch("/de1/control/espresso",
                              {"stop_at_weight": 20}).status_code == 403
    assert readonly_api.get("/de1/control/espresso").json() == before
    assert readonly_api.put("/de1/profile", raw=b"{}").status_code == 403
    assert readonly_api.put("/scale/tare", {"tare": True}).status_code == 403
    # a bad request stays a 400 even when writes are off
    assert readonly_api.patch("/de1/setting/fan_threshold",
                              {"temperature": "33"}).status_code == 400
    # stopping is always allowed (the library never refuses a stop)
    assert readonly_api.put("/de1/mode", {"mode": "Stop"}).json() == []
    assert readonly_api.patch("/de1/firmware/cancel", raw=b"").json() == []


def test_missing_pyde1_features_are_418(api: Server) -> None:
    for method, path in (("GET", "/thermometer"), ("PATCH", "/thermometer/id"),
                         ("GET", "/logs"), ("GET", "/log/pyde1.log"),
                         ("PUT", "/scan"), ("GET", "/flow_sequencer"),
                         ("GET", "/de1/setting/auto_off_time"),
                         ("GET", "/de1/calibration/internal")):
        r = api.put(path, {}) if method == "PUT" else api.patch(path, {}) \
            if method == "PATCH" else api.get(path)
        assert r.status_code == 418, path
        assert r.text.startswith("DE1APIUnsupportedFeatureError(")
    # writes that would scan, capture or release: the devices come from the configuration
    for path, body in (("/de1/id", {"id": "scan"}), ("/scale/id", {"id": None}),
                       ("/de1/availability", {"mode": "release"}),
                       ("/de1/calibration/line_frequency", {"hz": 60})):
        assert api.patch(path, body).status_code == 418, path


def test_not_configured_devices_are_409(serve: object) -> None:
    server: Server = serve(None, None, allow_writes=True)  # type: ignore[operator]
    r = server.get("/de1/state")
    assert (r.status_code, r.text) == (409, "DE1NotConnectedError('DE1 not connected')")
    assert server.patch("/scale/tare", {"tare": True}).text == \
        "ScaleNotConnectedError('Scale not connected')"
    assert server.put("/de1/mode", {"mode": "Wake"}).status_code == 409
    assert server.get("/de1/id").json() == {"id": None, "name": None}
    assert server.get("/de1/connectivity").json() == {"mode": "not_connected"}
    assert server.get("/scale").json()["id"] == {"id": None, "name": None, "type": None}
    assert server.get("/version").status_code == 200
    assert server.patch("/de1/firmware/cancel", raw=b"").status_code == 409
