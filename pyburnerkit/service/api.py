"""The generic HTTP API under ``/api/v1/`` (every family), and the service's top-level WSGI
application that also routes pyDE1's paths.

======  =======================================  ==============================================
method  path                                     what
======  =======================================  ==============================================
GET     /api/v1/health                           the service is up; devices by connection state
GET     /api/v1/devices                          every device: family, endpoint, connection,
                                                 last update
GET     /api/v1/devices/{name}                   one device's full cached state
PATCH   /api/v1/devices/{name}                   change settings: ``{"TempDesired": 22}``
POST    /api/v1/devices/{name}/actions/{action}  press a button (``start``, ``tare``...)
GET     /api/v1/devices/{name}/events            server-sent events: samples, state changes
GET     /api/v1/openapi.json                     this table as an OpenAPI 3 document
======  =======================================  ==============================================

Changes go through the library's own setters, chosen by the family's semantic table
(:mod:`pyburnerkit.semantics`) exactly as Home Assistant's commands are
(:meth:`pyburnerkit.recorder.commands.Commands.prepare`): the client checks limits, write
gating (``allow_writes``) and the device's confirmation. Each request's device call gets the
service's ``request_timeout``; a slow device answers 504, a disconnected one 503, and neither
holds up requests for other devices (each request runs on its own server thread).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from .. import __version__
from ..errors import DeviceConnectionError
from ..recorder.commands import Commands, load_table, lookup
from ..recorder.samples import normalise_value
from ..semantics import Entity
from .state import DeviceEntry, DeviceHub
from .wsgi import (HTTPError, Request, Response, Route, Router, StartResponse,
                   check_browser_origin, check_token, error_response, error_status,
                   json_response, openapi_document, respond)

log = logging.getLogger(__name__)

__all__ = ["GenericApi", "ServiceApp", "PREFIX"]

PREFIX = "/api/v1"

# ------------------------------------------------------------------------------ schemas
_VALUE = {"nullable": True, "description": "a number or a text (enumerations: the number, "
                                           "with its name in text)"}
_FIELD = {"type": "object", "properties": {
    "channel": {"type": "string"}, "field": {"type": "string"},
    "name": {"type": "string", "description": "friendly name (the family's semantic table)"},
    "value": _VALUE, "unit": {"type": "string"},
    "text": {"type": "string", "nullable": True},
    "timestamp": {"type": "number", "description": "UTC epoch seconds"}}}
_SUMMARY = {"type": "object", "required": ["name", "family", "connection"], "properties": {
    "name": {"type": "string"}, "family": {"type": "string"},
    "endpoint": {"type": "string"},
    "connection": {"type": "string",
                   "enum": ["idle", "connecting", "connected", "reconnecting", "closed"]},
    "last_update": {"type": "number", "nullable": True,
                    "description": "UTC epoch seconds of the newest sample"},
    "writes_allowed": {"type": "boolean"}, "href": {"type": "string"}}}
_STATE = {"allOf": [{"$ref": "#/components/schemas/DeviceSummary"}, {
    "type": "object", "properties": {
        "stale": {"type": "boolean"}, "error": {"type": "string", "nullable": True},
        "fields": {"type": "object",
                   "additionalProperties": {"$ref": "#/components/schemas/Field"}}}}]}
_SCHEMAS = {"Field": _FIELD, "DeviceSummary": _SUMMARY, "DeviceState": _STATE}
_PATCH = {"type": "object", "minProperties": 1,
          "description": "field key -> new value: a number for a number, true/false for a "
                         "switch, an option for a select",
          "additionalProperties": {"oneOf": [{"type": "number"}, {"type": "string"},
                                             {"type": "boolean"}]}}
_CONFIRMED = {"type": "object", "properties": {
    "device": {"type": "string"},
    "confirmed": {"type": "object", "additionalProperties": _VALUE}}}
_ACTION = {"type": "object", "properties": {"device": {"type": "string"},
                                            "action": {"type": "string"},
                                            "done": {"type": "boolean"}}}
_LIST = {"type": "object", "properties": {"devices": {
    "type": "array", "items": {"$ref": "#/components/schemas/DeviceSummary"}}}}
_HEALTH = {"type": "object", "properties": {"status": {"type": "string"},
                                            "version": {"type": "string"},
                                            "devices": {"type": "object",
                                                        "additionalProperties": {
                                                            "type": "integer"}}}}


def _num_text(value: Any) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _payload(key: str, entity: Entity, value: Any) -> str:
    """The command text the router takes (Home Assistant's payloads) for a JSON value.

    :raises HTTPError: 400 when the JSON type does not fit the entity (nothing was sent).
    """
    kind = entity.kind
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "switch":
        if not isinstance(value, bool):
            raise HTTPError(400, "ValidationError",
                            f"{key} is a switch: give true or false, got {value!r}")
        return "ON" if value else "OFF"
    if kind == "select":
        if not isinstance(value, str):
            options = ", ".join(_options(entity))
            raise HTTPError(400, "ValidationError",
                            f"{key} is a select: give one of {options}, got {value!r}")
        return value
    if kind == "number":
        if not number:
            raise HTTPError(400, "ValidationError",
                            f"{key} needs a number{_limits(entity)}, got {value!r}")
        return _num_text(value)
    if kind == "climate":
        if number:
            return _num_text(value)
        if isinstance(value, str):
            return value
        raise HTTPError(400, "ValidationError",
                        f"{key} takes a temperature{_limits(entity)} or a mode (heat, off), "
                        f"got {value!r}")
    if number:
        return _num_text(value)
    if isinstance(value, str):
        return value
    raise HTTPError(400, "ValidationError", f"{key} takes a number or a text, got {value!r}")


def _options(entity: Entity) -> List[str]:
    control = entity.control
    if control is not None and control.choices is not None:
        return list(control.choices)
    return list(entity.options)


def _limits(entity: Entity) -> str:
    control = entity.control
    if control is None or control.minimum is None or control.maximum is None:
        return ""
    unit = f" {entity.unit}" if entity.unit else ""
    return f" in {control.minimum:g}..{control.maximum:g}{unit}"


def _confirmed(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    norm = normalise_value(value)
    if norm is None:
        return None
    number, text = norm
    return text if text is not None else number


def _sse(event: str, data: Any) -> bytes:
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    return f"event: {event}\ndata: {text}\n\n".encode("utf-8")


class _Stream:
    """The body of one event stream: yields SSE chunks until the hub closes, the service
    stops or the client goes away; :meth:`close` (called by the server, always) frees its
    slot, whether or not it was ever iterated."""

    def __init__(self, api: "GenericApi", entry: DeviceEntry,
                 disconnected: Optional[Callable[[], bool]]) -> None:
        self._api = api
        self._entry = entry
        self._disconnected = disconnected
        self._chunks: Optional[Iterator[bytes]] = None
        self._released = False

    def __iter__(self) -> "_Stream":
        return self

    def __next__(self) -> bytes:
        if self._chunks is None:
            self._chunks = self._run()
        return next(self._chunks)

    def _gone(self) -> bool:
        return self._disconnected is not None and bool(self._disconnected())

    def _run(self) -> Iterator[bytes]:
        api, hub, entry = self._api, self._api.hub, self._entry
        cursor = hub.cursor(entry)
        yield b"retry: 2000\n\n" + _sse("snapshot", hub.state(entry))
        quiet_since = time.monotonic()
        while not hub.closed and not api.stopping and not self._gone():
            cursor, events, resync = hub.wait(entry, cursor, api.stream_check)
            if hub.closed or api.stopping or self._gone():
                return
            if resync:
                yield _sse("snapshot", hub.state(entry))
            elif events:
                yield b"".join(_sse(kind, data) for kind, data in events)
            elif time.monotonic() - quiet_since >= api.keepalive:
                yield b": keepalive\n\n"  # a proxy keeps the stream; a gone client shows
            else:
                continue
            quiet_since = time.monotonic()

    def close(self) -> None:
        if self._chunks is not None:
            close = getattr(self._chunks, "close", None)
            if callable(close):
                close()
        if not self._released:
            self._released = True
            self._api._release_stream()


class GenericApi:
    """The ``/api/v1`` routes over a :class:`DeviceHub`.

    :param hub: the state cache.
    :param commands: the router whose
        :meth:`~pyburnerkit.recorder.commands.Commands.prepare` plans each change (its
        ``timeout`` is each device call's).
    :param max_streams: event streams open at once; one more is refused with 503 (each holds a
        server thread).
    :param stream_check: seconds between an idle stream's checks that its client is still
        there and the service still runs.
    :param keepalive: seconds of silence after which a stream sends an SSE comment.
    """

    def __init__(self, hub: DeviceHub, commands: Commands, *, max_streams: int = 8,
                 stream_check: float = 1.0, keepalive: float = 15.0,
                 token: bool = False) -> None:
        self.hub = hub
        self.commands = commands
        self.max_streams = max_streams
        self.stream_check = stream_check
        self.keepalive = keepalive
        self.stopping = False
        self._token = token
        self._streams = 0
        self._stream_cond = threading.Condition()
        d = {"name": "the device's id (GET /api/v1/devices lists them)"}
        errors_write = (400, 403, 409, 413, 415, 418, 503, 504)
        self.router = Router([
            Route("GET", f"{PREFIX}/health", self.health, "Service health",
                  "getHealth", response_schema=_HEALTH),
            Route("GET", f"{PREFIX}/devices", self.list_devices, "List the devices",
                  "listDevices", response_schema=_LIST),
            Route("GET", f"{PREFIX}/devices/{{name}}", self.get_device,
                  "A device's full cached state", "getDevice",
                  response_schema={"$ref": "#/components/schemas/DeviceState"}, params=d),
            Route("PATCH", f"{PREFIX}/devices/{{name}}", self.patch_device,
                  "Change settings through the client's own setters", "patchDevice",
                  request_schema=_PATCH, response_schema=_CONFIRMED, errors=errors_write,
                  params=d),
            Route("POST", f"{PREFIX}/devices/{{name}}/actions/{{action}}", self.post_action,
                  "Run an action (a button of the family's table)", "postAction",
                  response_schema=_ACTION, errors=errors_write,
                  params={**d, "action": "the action's field name (start, stop, tare...)"}),
            Route("GET", f"{PREFIX}/devices/{{name}}/events", self.events,
                  "Server-sent events: snapshot, samples, state", "deviceEvents",
                  response_schema={"type": "string"}, response_type="text/event-stream",
                  errors=(503,), params=d),
            Route("GET", f"{PREFIX}/openapi.json", self.openapi,
                  "This API as an OpenAPI 3 document", "getOpenApi",
                  response_schema={"type": "object"}),
        ])

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ: Dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        try:
            route, params = self.router.match(method, str(environ.get("PATH_INFO", "")))
            response = route.handler(Request(environ, params))
        except Exception as exc:
            if error_status(exc) == 500:
                log.error("%s %s failed", method, environ.get("PATH_INFO"), exc_info=True)
            response = error_response(exc)
        return respond(response, start_response, head=method == "HEAD")

    def document(self) -> Dict[str, Any]:
        return openapi_document(
            self.router.routes, title="pyburnerkit service", version=__version__,
            description="Every device of a pyburnerkit service: state, settings, actions, "
                        "events. Errors answer {\"error\": class name, \"message\": text}.",
            token=self._token, schemas=_SCHEMAS)

    # ------------------------------------------------------------------ handlers
    def _entry(self, request: Request) -> DeviceEntry:
        name = request.params["name"]
        try:
            return self.hub.entry(name)
        except KeyError:
            known = ", ".join(sorted(self.hub.devices)) or "none"
            raise HTTPError(404, "UnknownDevice",
                            f"no device {name!r}; devices: {known}") from None

    def health(self, request: Request) -> Response:
        counts: Dict[str, int] = {}
        for item in self.hub.listing():
            counts[item["connection"]] = counts.get(item["connection"], 0) + 1
        return json_response({"status": "stopping" if self.stopping else "ok",
                              "version": __version__, "devices": counts})

    def list_devices(self, request: Request) -> Response:
        return json_response({"devices": self.hub.listing()})

    def get_device(self, request: Request) -> Response:
        return json_response(self.hub.state(self._entry(request)))

    def openapi(self, request: Request) -> Response:
        return json_response(self.document())

    def _place(self, entry: DeviceEntry, key: str) -> Tuple[str, str, Optional[Entity]]:
        """``(channel, field, entity)`` of a field key (the entity None when the family's
        table does not know it)."""
        table = load_table(entry.family)
        found = self.hub.place(entry, key)
        if found is not None:
            return found[0], found[1], lookup(table, found[1], found[0])
        entity = lookup(table, key, "")
        if entity is not None:
            return "", key, entity
        if "/" in key:
            channel, rest = key.split("/", 1)
            for name in (rest, "/" + rest):
                entity = lookup(table, name, channel)
                if entity is not None:
                    return channel, name, entity
        return "", key, None

    def _controls(self, entry: DeviceEntry, buttons: bool) -> List[str]:
        table = load_table(entry.family)
        if table is None:
            return []
        return sorted(k for k, e in table.controls().items()
                      if (e.kind == "button") == buttons)

    @staticmethod
    def _connected(entry: DeviceEntry) -> None:
        state = entry.live_connection()
        if state != "connected":
            raise DeviceConnectionError(f"{entry.name} is not connected ({state}); nothing "
                                        f"was sent", device=entry.family,
                                        endpoint=entry.endpoint or None)

    def patch_device(self, request: Request) -> Response:
        entry = self._entry(request)
        body = request.json()
        if not isinstance(body, dict) or not body:
            raise HTTPError(400, "ValidationError",
                            'the body must be a JSON object of settings, e.g. '
                            '{"TempDesired": 22}')
        calls: List[Tuple[str, Callable[[], Any]]] = []
        for key, value in body.items():
            channel, name, entity = self._place(entry, key)
            if entity is None or entity.control is None:
                settings = ", ".join(self._controls(entry, False)) or "none"
                raise HTTPError(400, "UnknownField",
                                f"{entry.name} has no setting {key!r}; settings of the "
                                f"{entry.family} family: {settings}")
            if entity.kind == "button":
                raise HTTPError(400, "ValidationError",
                                f"{key} is an action: POST {PREFIX}/devices/{entry.name}/"
                                f"actions/{key}")
            payload = _payload(key, entity, value)
            calls.append((key, self.commands.prepare(entry.family, entry.device, channel,
                                                     name, payload)))
        self._connected(entry)
        confirmed: Dict[str, Any] = {}
        for key, call in calls:
            try:
                result = call()
            except Exception as exc:
                if not confirmed:
                    raise
                # the earlier settings are on the device: say so with the error
                status = error_status(exc)
                raise HTTPError(status, type(exc).__name__, f"{key}: {exc}",
                                extra={"applied": confirmed}) from exc
            confirmed[key] = _confirmed(result)
            norm = normalise_value(result)
            if norm is not None:
                self.hub.confirm(entry, key, norm[0], norm[1])
        return json_response({"device": entry.name, "confirmed": confirmed})

    def post_action(self, request: Request) -> Response:
        entry = self._entry(request)
        key = request.params["action"]
        channel, name, entity = self._place(entry, key)
        if entity is None or entity.control is None or entity.kind != "button":
            actions = ", ".join(self._controls(entry, True)) or "none"
            raise HTTPError(404, "UnknownAction",
                            f"{entry.name} has no action {key!r}; actions of the "
                            f"{entry.family} family: {actions}")
        body = request.json(required=False)
        if body not in (None, {}):
            raise HTTPError(400, "ValidationError",
                            f"the action {key} takes no parameters, got {body!r}")
        call = self.commands.prepare(entry.family, entry.device, channel, name, "PRESS")
        self._connected(entry)
        call()
        return json_response({"device": entry.name, "action": key, "done": True})

    def events(self, request: Request) -> Response:
        entry = self._entry(request)
        with self._stream_cond:
            if self.stopping:
                raise HTTPError(503, "ServiceStopping", "the service is stopping")
            if self._streams >= self.max_streams:
                raise HTTPError(503, "TooManyStreams",
                                f"{self._streams} event streams are open: the limit is "
                                f"{self.max_streams}", headers=[("Retry-After", "5")])
            self._streams += 1
            self._stream_cond.notify_all()
        stream = _Stream(self, entry, request.environ.get("waitress.client_disconnected"))
        return Response(200, stream, [("Content-Type", "text/event-stream; charset=utf-8"),
                                      ("Cache-Control", "no-store"),
                                      ("X-Accel-Buffering", "no")])

    # ------------------------------------------------------------------ streams
    def _release_stream(self) -> None:
        with self._stream_cond:
            self._streams -= 1
            self._stream_cond.notify_all()

    @property
    def open_streams(self) -> int:
        return self._streams

    def wait_streams(self, predicate: Callable[[int], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(open streams)`` holds or ``timeout`` seconds pass; returns
        whether it held (re-checked whenever a stream opens or ends)."""
        with self._stream_cond:
            return bool(self._stream_cond.wait_for(lambda: predicate(self._streams), timeout))

    def stop(self) -> None:
        """End every stream at its next wake-up and refuse new ones (the hub wakes them)."""
        with self._stream_cond:
            self.stopping = True
            self._stream_cond.notify_all()


class ServiceApp:
    """The service's WSGI application: the bearer token for everything, ``/api/v1/`` to the
    generic API, pyDE1's paths to the pyDE1-compatible app when one is configured, a JSON 404
    for the rest. Thread-safe (called on the server's worker threads)."""

    def __init__(self, api: GenericApi, pyde1: Any = None, token: Optional[str] = None,
                 *, loopback_only: bool = True) -> None:
        self.api = api
        self.pyde1 = pyde1
        self._token = token
        #: bound to loopback: only loopback ``Host`` names are answered (DNS rebinding)
        self.loopback_only = loopback_only

    def __repr__(self) -> str:
        return (f"<ServiceApp token={'set' if self._token else 'none'} "
                f"pyde1={'yes' if self.pyde1 is not None else 'no'}>")

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", "") or "/")
        try:
            check_token(environ, self._token)
            check_browser_origin(environ, loopback_only=self.loopback_only)
        except HTTPError as exc:
            return respond(error_response(exc), start_response)
        if path == PREFIX or path.startswith(PREFIX + "/"):
            return self.api(environ, start_response)
        if self.pyde1 is not None:
            try:
                handled = bool(self.pyde1.handles(path))
            except Exception:
                log.error("the pyDE1 app failed to route %s", path, exc_info=True)
                handled = False
            if handled:
                result: Iterable[bytes] = self.pyde1(environ, start_response)
                return result
        return respond(error_response(HTTPError(404, "NotFound", f"no route {path}")),
                       start_response)

