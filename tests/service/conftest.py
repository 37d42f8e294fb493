"""Fixtures and helpers of the service tests: services over the families' simulators, served
by waitress on a free loopback port and driven with ``requests`` over real HTTP."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from pyburnerkit.recorder.sources import open_source
from pyburnerkit.service import Service

API = "/api/v1"


def make_service(devices: List[Dict[str, Any]], **kwargs: Any) -> Service:
    """A started service over ``devices`` (``family``, ``url``, ``id``, ``options``,
    ``controls``), built as the config builds them (``open_source``), on a free port."""
    sources = []
    controls: Dict[str, Any] = {}
    for spec in devices:
        sources.append(open_source(spec["family"], spec["url"], device=spec["id"],
                                   options=spec.get("options", {})))
        if spec.get("controls"):
            controls[f"{spec['family']}/{spec['id']}"] = spec["controls"]
    kwargs.setdefault("port", 0)
    kwargs.setdefault("request_timeout", 5.0)
    service = Service(sources, controls=controls or None, **kwargs)
    try:
        return service.start()
    except BaseException:
        service.close()
        raise


def wait_hub(service: Service, name: str, predicate: Callable[[Dict[str, Any]], Any],
             timeout: float = 20.0) -> Dict[str, Any]:
    """Block on the service's state cache until ``predicate(state of name)`` holds; woken by
    each update (no polling sleep)."""
    hub = service.hub
    entry = hub.entry(name)
    deadline = time.monotonic() + timeout
    cursor = 0
    while True:
        state = hub.state(entry)
        if predicate(state):
            return state
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{name}: condition not met within {timeout} s; state "
                                 f"connection={state['connection']} "
                                 f"fields={sorted(state['fields'])[:20]}")
        cursor, _, _ = hub.wait(entry, cursor, min(left, 1.0))


def connected_with_fields(state: Dict[str, Any]) -> bool:
    return state["connection"] == "connected" and bool(state["fields"])


@pytest.fixture
def services() -> Iterator[List[Service]]:
    """Services a test starts; all closed (bounded) at its end."""
    started: List[Service] = []
    yield started
    for service in started:
        assert service.close(timeout=15.0), "the service did not close cleanly"


def value_of(state: Dict[str, Any], key: str) -> Optional[Any]:
    item = state["fields"].get(key)
    return None if item is None else item["value"]
