"""The HTTP layer of the service over real loopback HTTP: errors and their status codes,
bounded bodies, the OpenAPI document, event streams, faults of one device (timeout,
disconnection, killed mid-request) that never hold up another, and the bearer token."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests
from openapi_spec_validator import validate

from pyburnerkit.afterburner import AfterburnerClient
from pyburnerkit.afterburner.sim import AfterburnerSim
from pyburnerkit.errors import ConfigurationError
from pyburnerkit.recorder import AfterburnerSource
from pyburnerkit.service import Service

from .conftest import API, connected_with_fields, make_service, value_of, wait_hub

HEATER = [dict(family="afterburner", url="sim://?tick=0.05&speed=30&seed=2", id="heater",
               options={"allow_writes": True})]


@pytest.fixture
def heaters() -> Iterator[List[AfterburnerSim]]:
    """Two heater simulators on loopback (real WebSocket servers a test can kill)."""
    sims = [AfterburnerSim(tick=0.05, speed=30.0, seed=s).start("127.0.0.1", 0)
            for s in (7, 8)]
    try:
        yield sims
    finally:
        for sim in sims:
            sim.close()


def _over(sims: List[AfterburnerSim], **kwargs: Any) -> Service:
    sources = [AfterburnerSource(AfterburnerClient(f"ws://127.0.0.1:{sim.port}/",
                                                   allow_writes=True, retry_first=True),
                                 device=name, owns_client=True)
               for sim, name in zip(sims, ("a", "b"))]
    service = Service(sources, port=0, **kwargs)
    try:
        return service.start()
    except BaseException:
        service.close()
        raise


def test_request_errors_map_to_status_codes(services: List[Service]) -> None:
    service = make_service(HEATER)
    services.append(service)
    wait_hub(service, "heater", connected_with_fields)
    url = f"{service.url}{API}/devices/heater"

    def check(reply: requests.Response, status: int, error: str) -> Dict[str, Any]:
        assert reply.status_code == status, reply.text
        assert reply.headers["Content-Type"] == "application/json"
        body: Dict[str, Any] = reply.json()
        assert body["error"] == error and body["message"]
        return body

    check(requests.patch(url, data=b'{"TempDesired": ', timeout=10,
                         headers={"Content-Type": "application/json"}), 400, "BadRequest")
    check(requests.patch(url, json=[1, 2], timeout=10), 400, "ValidationError")
    before = value_of(requests.get(url, timeout=10).json(), "TempDesired")
    # a climate takes a temperature or a mode: the router's conversion refuses the rest
    body = check(requests.patch(url, json={"TempDesired": "warm"}, timeout=10), 400,
                 "ConfigurationError")
    assert "warm" in body["message"] and "heat" in body["message"]
    body = check(requests.patch(url, json={"TempDesired": True}, timeout=10), 400,
                 "ValidationError")
    assert "8..35 °C" in body["message"]
    check(requests.patch(url, json={"NoSuchField": 1}, timeout=10), 400, "UnknownField")
    check(requests.patch(url, json={"Start": 1}, timeout=10), 400, "ValidationError")
    check(requests.patch(url, data=b"x" * (16 * 1024 + 1), timeout=10), 413,
          "PayloadTooLarge")
    check(requests.get(f"{service.url}{API}/devices/nowhere", timeout=10), 404,
          "UnknownDevice")
    check(requests.get(f"{service.url}{API}/nothing", timeout=10), 404, "NotFound")
    check(requests.get(f"{service.url}/de1/state", timeout=10), 404, "NotFound")  # no DE1
    reply = requests.delete(url, timeout=10)
    check(reply, 405, "MethodNotAllowed")
    assert reply.headers["Allow"] == "GET, PATCH"
    check(requests.post(f"{url}/actions/Start", json={"now": True}, timeout=10), 400,
          "ValidationError")
    # no refused request reached the heater: the set point is what it was
    assert value_of(requests.get(url, timeout=10).json(), "TempDesired") == before


def test_openapi_document_is_valid_and_lists_every_route(services: List[Service]) -> None:
    service = make_service(HEATER)
    services.append(service)
    doc = requests.get(f"{service.url}{API}/openapi.json", timeout=10).json()
    validate(doc)
    for route in service.api.router.routes:
        operation = doc["paths"][route.path][route.method.lower()]
        assert operation["operationId"] == route.operation_id
        assert str(route.status) in operation["responses"]
    assert "security" not in doc  # no token: none asked for


def test_a_timeout_is_504_and_a_disconnected_device_503_then_it_recovers(
        heaters: List[AfterburnerSim], services: List[Service]) -> None:
    service = _over(heaters[:1], request_timeout=0.5)
    services.append(service)
    sim = heaters[0]
    url = f"{service.url}{API}/devices/a"
    wait_hub(service, "a", connected_with_fields)

    # the controller takes the command but never shows it: the request's timeout answers
    sim.silence(True)
    before = value_of(requests.get(url, timeout=10).json(), "TempDesired")
    reply = requests.patch(url, json={"TempDesired": 30 if before != 30 else 25}, timeout=30)
    assert reply.status_code == 504, reply.text
    assert reply.json()["error"] == "DeviceTimeoutError"
    sim.silence(False)

    # the link drops and stays down: 503 at once, nothing sent; the state says so
    sim.refuse_connections(10_000)
    sim.disconnect()
    wait_hub(service, "a", lambda s: s["connection"] != "connected")
    reply = requests.patch(url, json={"TempDesired": 20}, timeout=30)
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"] == "DeviceConnectionError"
    state = requests.get(url, timeout=10).json()
    assert state["stale"] and state["connection"] in ("reconnecting", "connecting")

    # it comes back: so does the API
    sim.refuse_connections(0)
    wait_hub(service, "a", lambda s: s["connection"] == "connected")
    reply = requests.patch(url, json={"TempDesired": 21}, timeout=30)
    assert reply.status_code == 200 and reply.json()["confirmed"] == {"TempDesired": 21}


def test_a_device_killed_mid_request_never_blocks_the_other(
        heaters: List[AfterburnerSim], services: List[Service]) -> None:
    service = _over(heaters, request_timeout=60.0)
    services.append(service)
    a, b = heaters
    for name in ("a", "b"):
        wait_hub(service, name, connected_with_fields)
    a.silence(True)  # a takes commands but never answers them
    target = 30 if a.snapshot()["TempDesired"] != 30 else 25
    result: Dict[str, requests.Response] = {}

    def hang() -> None:
        result["a"] = requests.patch(f"{service.url}{API}/devices/a",
                                     json={"TempDesired": target}, timeout=60)

    thread = threading.Thread(target=hang)
    thread.start()
    try:
        # the command reached heater a: its request is now waiting for a's confirmation.
        # The silenced simulator has no event to wait on, so ask it between short waits on
        # the service's cache (bounded)
        deadline = time.monotonic() + 30
        b_entry = service.hub.entry("b")
        while a.run_sync(lambda: a.snapshot()["TempDesired"]) != target:
            assert time.monotonic() < deadline, "heater a never got the command"
            service.hub.wait(b_entry, service.hub.cursor(b_entry), 0.2)
        # b keeps answering reads and writes while a's request hangs
        assert "a" not in result
        other = 30 if b.snapshot()["TempDesired"] != 30 else 25
        reply = requests.patch(f"{service.url}{API}/devices/b", json={"TempDesired": other},
                               timeout=30)
        assert reply.status_code == 200 and reply.json()["confirmed"] == {"TempDesired": other}
        assert requests.get(f"{service.url}{API}/devices", timeout=10).status_code == 200
        assert "a" not in result  # still waiting: nothing of b waited behind it
        a.close()  # heater a dies with the request in flight
        thread.join(30)
        assert not thread.is_alive()
        assert result["a"].status_code == 503, result["a"].text
        assert result["a"].json()["error"] in ("ConnectionLostError", "DeviceConnectionError")
    finally:
        thread.join(60)
    assert requests.get(f"{service.url}{API}/devices/b", timeout=10).status_code == 200


def test_event_stream_sends_changes_and_ends_when_the_client_leaves(
        services: List[Service]) -> None:
    service = make_service(HEATER)
    services.append(service)
    wait_hub(service, "heater", connected_with_fields)
    url = f"{service.url}{API}/devices/heater"
    before = value_of(requests.get(url, timeout=10).json(), "TempDesired")
    target = 30 if before != 30 else 25
    with requests.get(f"{url}/events", stream=True, timeout=30) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        lines = stream.iter_lines(decode_unicode=True)
        events: List[str] = []
        for line in lines:
            if line.startswith("event: "):
                events.append(line[7:])
                break
        assert events == ["snapshot"]
        assert requests.patch(url, json={"TempDesired": target},
                              timeout=30).status_code == 200
        seen = False
        current = ""
        for line in lines:
            if line.startswith("event: "):
                current = line[7:]
            elif line.startswith("data: ") and current == "samples":
                import json
                fields = json.loads(line[6:])["fields"]
                if fields.get("TempDesired", {}).get("value") == target:
                    seen = True
                    break
        assert seen
        assert service.api.open_streams == 1
    # the client went away: the stream ends and frees its server thread
    assert service.api.wait_streams(lambda n: n == 0, timeout=15)


def test_event_streams_end_when_the_service_stops(services: List[Service]) -> None:
    service = make_service(HEATER)
    wait_hub(service, "heater", connected_with_fields)
    with requests.get(f"{service.url}{API}/devices/heater/events", stream=True,
                      timeout=30) as stream:
        first = next(stream.iter_lines(decode_unicode=True))
        assert first.startswith("retry:")
        assert service.close(timeout=15.0)  # not held up by the open stream
        rest = list(stream.iter_lines(decode_unicode=True))  # ends: the server closed it
        assert all(not line.startswith("event: ") or line == "event: snapshot"
                   for line in rest)
    assert service.api.open_streams == 0


def test_a_token_is_required_off_loopback(services: List[Service]) -> None:
    with pytest.raises(ConfigurationError, match="bearer token"):
        make_service(HEATER, host="0.0.0.0")
    token = "s3cret-token-value"
    service = make_service(HEATER, host="0.0.0.0", token=token)
    services.append(service)
    assert token not in repr(service) and token not in repr(service.app)
    url = f"http://127.0.0.1:{service.server.port}{API}/devices"  # type: ignore[union-attr]
    reply = requests.get(url, timeout=10)
    assert reply.status_code == 401 and reply.json()["error"] == "Unauthorized"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    reply = requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert reply.status_code == 401 and token not in reply.text
    reply = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert reply.status_code == 200 and reply.json()["devices"][0]["name"] == "heater"
    doc = requests.get(f"http://127.0.0.1:{service.server.port}{API}/openapi.json",  # type: ignore[union-attr]
                       headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    validate(doc)
    assert doc["security"] == [{"bearer": []}]


def test_insecure_serves_off_loopback_without_a_token(services: List[Service]) -> None:
    service = make_service(HEATER, host="0.0.0.0", insecure=True)
    services.append(service)
    port = service.server.port  # type: ignore[union-attr]
    assert requests.get(f"http://127.0.0.1:{port}{API}/health",
                        timeout=10).json()["status"] == "ok"
