"""What a web page on another site can make a browser send to the service is refused: the
browser's own headers are sent as a browser sends them (``Origin``, ``Sec-Fetch-Site``, a
form's content type, a rebinding site's ``Host``) over real HTTP to a real service, and the
heater is checked to be unchanged. Scripts, which send none of these headers, still work."""

from __future__ import annotations

from typing import Any, Dict, List

import requests

from pyburnerkit.service import Service

from .conftest import API, connected_with_fields, make_service, value_of, wait_hub

HEATER = [dict(family="afterburner", url="sim://?tick=0.05&speed=30&seed=5", id="heater",
               options={"allow_writes": True})]


def _set_point(service: Service) -> Any:
    return value_of(service.hub.state(service.hub.entry("heater")), "TempDesired")


def test_cross_site_requests_change_nothing(services: List[Service]) -> None:
    service = make_service(HEATER)
    services.append(service)
    wait_hub(service, "heater", connected_with_fields)
    host = service.url.split("://", 1)[1]
    url = f"{service.url}{API}/devices/heater"
    before = _set_point(service)
    target = 20 if before != 20 else 21
    client = service.recorder.sources[0].client
    running = client.status.run_state

    # a form with no field: an empty POST typed as a form (it used to start the heater)
    form = requests.post(f"{url}/actions/Start", timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415, form.text
    # another site's page, as the browser labels it
    for headers in ({"Origin": "http://evil.example"},
                    {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}):
        reply = requests.patch(url, json={"TempDesired": target}, headers=headers, timeout=10)
        assert (reply.status_code, reply.json()["error"]) == (403, "CrossSiteRequest"), headers
        action = requests.post(f"{url}/actions/Start", headers=headers, timeout=10)
        assert action.status_code == 403, headers
        pyde1 = requests.put(f"{service.url}/de1/mode", json={"mode": "Espresso"},
                             headers=headers, timeout=10)
        assert pyde1.status_code == 403, headers  # pyDE1's paths are behind the same check
    # a rebinding site: its own name, resolved to this machine
    rebound = requests.get(url, headers={"Host": f"evil.example:{host.rsplit(':', 1)[1]}"},
                           timeout=10)
    assert rebound.status_code == 421 and "evil.example" in rebound.json()["message"]

    assert _set_point(service) == before
    assert client.status.run_state == running

    # the service's own page (same origin) and a plain script are served
    same: Dict[str, str] = {"Origin": service.url, "Sec-Fetch-Site": "same-origin"}
    reply = requests.patch(url, json={"TempDesired": target}, headers=same, timeout=30)
    assert reply.status_code == 200, reply.text
    assert requests.get(url, headers={"Host": f"localhost:{host.rsplit(':', 1)[1]}"},
                        timeout=10).status_code == 200
    assert _set_point(service) == target

    # behind a reverse proxy: the page's origin is the proxy's public name, which the proxy
    # passes as X-Forwarded-Host (the Host it sends is the loopback address)
    proxied = {"Origin": "https://devices.example.org",
               "X-Forwarded-Host": "devices.example.org"}
    reply = requests.patch(url, json={"TempDesired": before}, headers=proxied, timeout=30)
    assert reply.status_code == 200, reply.text
