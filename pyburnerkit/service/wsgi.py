"""Plain WSGI plumbing of the service: a route table, JSON requests and responses, the error
tree mapped to status codes, bearer-token checks, and the OpenAPI document generated from the
same route table (so the document cannot drift from what is served).

No framework: a :class:`Route` is a method, a path template (``/api/v1/devices/{name}``), a
handler and the schemas the OpenAPI document shows. Handlers run on the WSGI server's worker
threads; each gets a :class:`Request` and returns a :class:`Response` (or raises, see
:func:`error_status`).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Pattern, Tuple)

from ..errors import (ClientClosedError, ConfigurationError, DeviceConnectionError,
                      DeviceError, DeviceTimeoutError, ProtocolError, PyBurnerKitError,
                      UnsupportedFeatureError, WriteNotAllowedError)
from ..recorder.secrets import redact_text

log = logging.getLogger(__name__)

__all__ = ["Route", "Router", "Request", "Response", "HTTPError", "error_status", "error_body",
           "json_response", "openapi_document", "check_token", "check_browser_origin",
           "MAX_BODY", "ERROR_SCHEMA", "SAFE_METHODS"]

#: request bodies of the generic API are bounded (a larger one is refused with 413 unread)
MAX_BODY = 16 * 1024

StartResponse = Callable[..., Any]
WSGIApp = Callable[[Dict[str, Any], StartResponse], Iterable[bytes]]

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            421: "Misdirected Request",
            413: "Payload Too Large", 415: "Unsupported Media Type", 418: "I'm a teapot",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}

ERROR_SCHEMA: Dict[str, Any] = {
    "type": "object", "required": ["error", "message"],
    "properties": {"error": {"type": "string", "description": "the error's class name"},
                   "message": {"type": "string"}}}


class HTTPError(Exception):
    """An error answered as ``{"error": name, "message": message}`` with ``status``."""

    def __init__(self, status: int, name: str, message: str,
                 headers: Optional[List[Tuple[str, str]]] = None,
                 extra: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message
        self.headers = headers or []
        self.extra = extra or {}


def error_status(exc: BaseException) -> int:
    """The HTTP status of an exception, from the library's error tree: 400 validation, 403
    writes not allowed, 409 the device refused in its current state, 418 unsupported feature,
    502 undecodable answer, 503 device not connected (or closed), 504 no answer in time, 500
    anything else."""
    if isinstance(exc, HTTPError):
        return exc.status
    if isinstance(exc, WriteNotAllowedError):
        return 403
    if isinstance(exc, UnsupportedFeatureError):
        return 418
    if isinstance(exc, DeviceError):
        return 409
    if isinstance(exc, ConfigurationError):
        return 400
    # a connect timeout is a connection problem (the device is not there), not a slow answer
    if isinstance(exc, (DeviceConnectionError, ClientClosedError)):
        return 503
    if isinstance(exc, (DeviceTimeoutError, TimeoutError)):
        return 504
    if isinstance(exc, ConnectionError):
        return 503
    if isinstance(exc, ProtocolError):
        return 502
    return 500


def error_body(exc: BaseException) -> Dict[str, Any]:
    """``{"error": class name, "message": text}`` with credentials removed from the text."""
    if isinstance(exc, HTTPError):
        body = {"error": exc.name, "message": redact_text(exc.message)}
        body.update(exc.extra)
        return body
    if error_status(exc) == 500 and not isinstance(exc, PyBurnerKitError):
        return {"error": "InternalError", "message": "internal error (see the service log)"}
    return {"error": type(exc).__name__, "message": redact_text(str(exc))}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False,
                      default=_default).encode("utf-8")


def _default(value: Any) -> Any:
    name = getattr(value, "name", None)
    if isinstance(name, str):  # enum members
        return name
    return str(value)


@dataclass
class Response:
    """A status, headers and a body (bytes, or an iterator of chunks for a stream)."""

    status: int = 200
    body: Any = b""
    headers: List[Tuple[str, str]] = field(default_factory=list)

    def status_line(self) -> str:
        return f"{self.status} {_REASONS.get(self.status, 'Unknown')}"


def json_response(body: Any, status: int = 200,
                  headers: Optional[List[Tuple[str, str]]] = None) -> Response:
    data = dumps(body)
    out = [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
           ("Cache-Control", "no-store")]
    return Response(status, data, out + list(headers or []))


def error_response(exc: BaseException) -> Response:
    status = error_status(exc)
    headers = exc.headers if isinstance(exc, HTTPError) else []
    return json_response(error_body(exc), status, headers)


class Request:
    """One request: method, path, query, headers and a bounded JSON body."""

    def __init__(self, environ: Dict[str, Any], params: Optional[Dict[str, str]] = None,
                 max_body: int = MAX_BODY) -> None:
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        self.path = str(environ.get("PATH_INFO", "") or "/")
        self.params: Dict[str, str] = params or {}
        self.max_body = max_body
        self._body: Optional[bytes] = None

    def header(self, name: str) -> Optional[str]:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            value = self.environ.get(key)
        else:
            value = self.environ.get(f"HTTP_{key}")
        return None if value in (None, "") else str(value)

    def body(self) -> bytes:
        """The raw body, at most ``max_body`` bytes.

        :raises HTTPError: 413 when it is (or says it is) larger, 400 for a bad length.
        """
        if self._body is not None:
            return self._body
        length_text = self.header("Content-Length")
        limit = self.max_body
        if length_text is not None:
            try:
                length = int(length_text)
            except ValueError:
                raise HTTPError(400, "BadRequest", f"Content-Length {length_text!r} is not a "
                                                   f"number") from None
            if length > limit:
                raise HTTPError(413, "PayloadTooLarge",
                                f"the request body is {length} bytes: the limit is {limit} "
                                f"bytes")
            data = self.environ["wsgi.input"].read(length) if length > 0 else b""
        else:
            data = self.environ["wsgi.input"].read(limit + 1)
            if len(data) > limit:
                raise HTTPError(413, "PayloadTooLarge",
                                f"the request body is over the limit of {limit} bytes")
        self._body = bytes(data)
        return self._body

    def json(self, *, required: bool = True) -> Any:
        """The body parsed as JSON (None when it is empty and not ``required``).

        :raises HTTPError: 400 for malformed JSON or an empty body that is required, 415 for
            a content type other than JSON.
        """
        data = self.body()
        # the type is checked before an empty body is accepted: a browser form with no field
        # is an empty POST that another site's page may send
        ctype = (self.header("Content-Type") or "application/json").split(";")[0].strip()
        if ctype.lower() not in ("application/json", "application/merge-patch+json"):
            raise HTTPError(415, "UnsupportedMediaType",
                            f"the body must be application/json, got {ctype}")
        if not data.strip():
            if required:
                raise HTTPError(400, "BadRequest", "the request needs a JSON body")
            return None
        try:
            return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPError(400, "BadRequest", f"malformed JSON: {exc}") from None


#: methods that change nothing (a browser may send them from any page: they are answered)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def _host_name(value: str) -> str:
    """``host`` of a ``Host``/``Origin`` value (``[::1]:1234`` -> ``::1``), lower case."""
    value = value.strip().lower()
    if "://" in value:
        value = value.split("://", 1)[1]
    value = value.split("/", 1)[0]
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _is_loopback_name(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        import ipaddress
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_browser_origin(environ: Mapping[str, Any], *, loopback_only: bool) -> None:
    """Refuse what a web page on another site could make a browser send here.

    * With the service bound to loopback (no token needed), a ``Host`` that is not a loopback
      name is refused with 421: a hostile site's DNS name pointed at 127.0.0.1 (DNS
      rebinding) would otherwise reach every path from the victim's browser.
    * A request that changes something (any method but GET, HEAD, OPTIONS) is refused with
      403 when the browser says it comes from another site: ``Sec-Fetch-Site`` other than
      ``same-origin``/``none``, or an ``Origin`` whose host and port differ from ``Host``.
      Scripts, ``curl`` and pyDE1's clients send neither header, so they are not affected.

    :raises HTTPError: 421 or 403 as above.
    """
    host_header = str(environ.get("HTTP_HOST", "") or "")
    if loopback_only and host_header and not _is_loopback_name(_host_name(host_header)):
        raise HTTPError(421, "MisdirectedRequest",
                        f"this service answers only loopback host names, not "
                        f"{_host_name(host_header)!r} (bind another address with a token to "
                        f"serve other names)")
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    if method in SAFE_METHODS:
        return
    site = str(environ.get("HTTP_SEC_FETCH_SITE", "") or "").lower()
    if site and site not in ("same-origin", "none"):
        raise HTTPError(403, "CrossSiteRequest",
                        f"a {method} from another site's page is refused "
                        f"(Sec-Fetch-Site: {site})")
    origin = str(environ.get("HTTP_ORIGIN", "") or "")
    if origin and origin.lower() != "null":
        # behind a reverse proxy the page's host is the proxy's (X-Forwarded-Host); a page
        # cannot set that header on a request it may send cross-site without a preflight
        hosts = {host_header.lower()} | {
            h.strip().lower() for h in str(environ.get("HTTP_X_FORWARDED_HOST", "")).split(",")
            if h.strip()}
        same = origin.split("://", 1)[-1].rstrip("/").lower() in hosts
        if not same:
            raise HTTPError(403, "CrossSiteRequest",
                            f"a {method} from another site's page ({origin}) is refused")
    elif origin.lower() == "null":
        raise HTTPError(403, "CrossSiteRequest",
                        f"a {method} from an opaque origin (a sandboxed page or a file) is "
                        f"refused")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# ----------------------------------------------------------------------------------- routes
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Route:
    """One operation. ``path`` is a template whose ``{name}`` segments match one path segment
    each and reach the handler as ``request.params``. The schemas and ``errors`` (the status
    codes it may answer besides ``status``) feed the OpenAPI document."""

    method: str
    path: str
    handler: Callable[[Request], Response]
    summary: str
    operation_id: str
    status: int = 200
    request_schema: Optional[Dict[str, Any]] = None
    response_schema: Optional[Dict[str, Any]] = None
    response_type: str = "application/json"
    errors: Tuple[int, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)

    def pattern(self) -> Pattern[str]:
        parts = []
        last = 0
        for match in _PARAM.finditer(self.path):
            parts.append(re.escape(self.path[last:match.start()]))
            parts.append(f"(?P<{match.group(1)}>[^/]+)")
            last = match.end()
        parts.append(re.escape(self.path[last:]))
        return re.compile("".join(parts))

    @property
    def parameters(self) -> List[str]:
        return _PARAM.findall(self.path)


class Router:
    """A route table. :meth:`match` finds the route of a request or raises 404/405."""

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self.routes: List[Route] = []
        self._compiled: List[Tuple[Pattern[str], Route]] = []
        for route in routes:
            self.add(route)

    def add(self, route: Route) -> None:
        self.routes.append(route)
        self._compiled.append((route.pattern(), route))

    def match(self, method: str, path: str) -> Tuple[Route, Dict[str, str]]:
        """:raises HTTPError: 404 (no route has that path), 405 with ``Allow`` (no route has
        that method on that path)."""
        from urllib.parse import unquote
        allowed: List[str] = []
        for pattern, route in self._compiled:
            found = pattern.fullmatch(path)
            if found is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
            allowed.append(route.method)
        if allowed:
            allow = ", ".join(sorted(set(allowed)))
            raise HTTPError(405, "MethodNotAllowed",
                            f"{method} is not allowed on {path}; allowed: {allow}",
                            headers=[("Allow", allow)])
        raise HTTPError(404, "NotFound", f"no route {path}")


def check_token(environ: Mapping[str, Any], token: Optional[str]) -> None:
    """Check ``Authorization: Bearer <token>`` in constant time (nothing to check without a
    token).

    :raises HTTPError: 401 with ``WWW-Authenticate: Bearer`` when it is missing or wrong (the
        message never repeats what was sent).
    """
    if not token:
        return
    given = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = given.partition(" ")
    ok = hmac.compare_digest(value.strip().encode("utf-8"), token.encode("utf-8"))
    if scheme.lower() != "bearer" or not ok:
        raise HTTPError(401, "Unauthorized",
                        "this service needs 'Authorization: Bearer <token>'"
                        if not given else "the bearer token is not valid",
                        headers=[("WWW-Authenticate", 'Bearer realm="pyburnerkit"')])


def respond(response: Response, start_response: StartResponse,
            head: bool = False) -> Iterable[bytes]:
    start_response(response.status_line(), response.headers)
    if head:
        close = getattr(response.body, "close", None)
        if callable(close):
            close()
        return [b""]
    if isinstance(response.body, (bytes, bytearray)):
        return [bytes(response.body)]
    body: Iterable[bytes] = response.body
    return body


# ----------------------------------------------------------------------------------- OpenAPI
def openapi_document(routes: Iterable[Route], *, title: str, version: str,
                     description: str = "", token: bool = False,
                     schemas: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """An OpenAPI 3.0 document describing ``routes`` (one operation per route)."""
    paths: Dict[str, Dict[str, Any]] = {}
    for route in routes:
        operation: Dict[str, Any] = {"operationId": route.operation_id,
                                     "summary": route.summary, "responses": {}}
        if route.parameters:
            operation["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
                 "description": route.params.get(name, name)}
                for name in route.parameters]
        if route.request_schema is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": route.request_schema}}}
        ok: Dict[str, Any] = {"description": _REASONS.get(route.status, "OK")}
        if route.response_schema is not None:
            ok["content"] = {route.response_type: {"schema": route.response_schema}}
        operation["responses"][str(route.status)] = ok
        codes = set(route.errors) | {404, 405, 500}
        if token:
            codes.add(401)
        for code in sorted(codes):
            operation["responses"][str(code)] = {
                "description": _REASONS.get(code, "error"),
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    components: Dict[str, Any] = {"schemas": {"Error": ERROR_SCHEMA, **dict(schemas or {})}}
    doc: Dict[str, Any] = {"openapi": "3.0.3",
                           "info": {"title": title, "version": version,
                                    "description": description},
                           "paths": paths, "components": components}
    if token:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc

