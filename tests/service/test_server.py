"""The WSGI server wrapper (:class:`~pyburnerkit.service.HttpServer`) against a real client:
how it stops while a request is still running."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Iterable, List

import requests

from pyburnerkit.service import HttpServer

from ..helpers import wait_until


def test_a_request_that_outlives_the_loop_never_writes_to_a_closed_trigger() -> None:
    """A worker still inside a request when ``close()`` empties the loop's map finishes by
    pulling waitress's trigger (a write to its pipe). The pipe used to be closed with the
    loop, keeping its descriptor number: the late write failed with EBADF (seen as a rare
    error at the end of the pyDE1 HTTP tests) or went into whatever had the number since.
    Now the trigger stays open until the workers are gone, and is closed then."""
    entered = threading.Event()
    release = threading.Event()

    def app(environ: Any, start_response: Callable[..., Any]) -> Iterable[bytes]:
        entered.set()
        release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"late"]

    server = HttpServer(app, threads=2).start()
    errors: List[BaseException] = []

    def get() -> None:
        try:
            requests.get(server.url, timeout=30)
        except requests.RequestException as exc:  # the close drops the connection
            errors.append(exc)
    client = threading.Thread(target=get)
    client.start()
    assert entered.wait(10), "the request never reached the app"
    closed: List[bool] = []
    closer = threading.Thread(target=lambda: closed.append(server.close(timeout=30)))
    closer.start()
    try:
        wait_until(lambda: not server.running, timeout=10, message="the loop thread ended")
        trigger = server._server.trigger
        os.fstat(trigger.trigger)          # still open while the worker runs
        server._server.pull_trigger()      # what the worker does when it finishes
    finally:
        release.set()
        closer.join(30)
        client.join(30)
    assert closed == [True]
    assert trigger._closed and trigger._fds == []  # closed once the workers stopped
