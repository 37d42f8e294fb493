"""Upload a shot to Visualizer (visualizer.coffee), as pyDE1's ``pyde1-visualizer`` does.

>>> from pyburnerkit.de1.visualizer import VisualizerUploader
>>> uploader = VisualizerUploader.from_env()          # doctest: +SKIP
>>> result = uploader.upload(sequencer.wait_complete())  # doctest: +SKIP
>>> result.url                                         # doctest: +SKIP
'https://visualizer.coffee/shots/4f1a...'

One HTTP POST per shot: ``multipart/form-data`` with the shot in the field ``file`` (the JSON
of :func:`~pyburnerkit.de1.profile.visualizer_json`, which Visualizer imports like de1app's
export), HTTP Basic authentication with the Visualizer user name (an e-mail) and password or
upload token, to a configurable URL (default ``https://visualizer.coffee/api/shots/upload``).
The answer's ``id`` names the shot; its page is ``<scheme>://<host>/shots/<id>``.

Credentials come from the arguments, a config mapping (:meth:`VisualizerUploader.from_config`,
e.g. the ``[visualizer]`` table of a TOML file: :meth:`~VisualizerUploader.from_file`) or the
environment (``PYBURNERKIT_VISUALIZER_USERNAME``, ``PYBURNERKIT_VISUALIZER_PASSWORD``; the URL
from ``PYBURNERKIT_VISUALIZER_URL``). They never appear in logs, reprs or errors: text the
server sends back is scrubbed of them, a URL carrying ``user:password@`` is refused without
being repeated, and credentials are only sent over HTTPS or to a loopback address (plain HTTP
elsewhere needs ``allow_insecure=True``). Redirects are not followed, so the credentials go
to the configured host only.

Deliberate differences from pyDE1: an upload that fails is not retried (a POST is a write;
pyDE1 re-queues it after 10 s); the upload runs on the calling thread, blocking until the
server answered or ``timeout`` (10 s) passed; ``min_flow_time_s`` (pyDE1's MIN_FLOW_TIME, 10 s
there) defaults to 0 (upload whatever you pass). Only the standard library is used (no extra).
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Union
from urllib.parse import urlsplit

from ..errors import (AuthenticationError, ConfigurationError, DeviceConnectionError,
                      DeviceError, DeviceTimeoutError, check_range)
from .models import ShotRecord
from .profile import visualizer_json

__all__ = ["DEFAULT_URL", "ENV_PASSWORD", "ENV_URL", "ENV_USERNAME", "VisualizerUpload",
           "VisualizerUploader"]

log = logging.getLogger(__name__)

#: Visualizer's shot upload endpoint, used when neither ``url`` nor
#: ``$PYBURNERKIT_VISUALIZER_URL`` names another.
DEFAULT_URL = "https://visualizer.coffee/api/shots/upload"
#: The environment variable holding the Visualizer user name (an e-mail).
ENV_USERNAME = "PYBURNERKIT_VISUALIZER_USERNAME"
#: The environment variable holding the Visualizer password or upload token.
ENV_PASSWORD = "PYBURNERKIT_VISUALIZER_PASSWORD"
#: The environment variable overriding :data:`DEFAULT_URL`.
ENV_URL = "PYBURNERKIT_VISUALIZER_URL"
_MASK = "***"
_MAX_REPLY = 1 << 20  # bytes of an answer read at most


@dataclass(frozen=True)
class VisualizerUpload:
    """What Visualizer answered: the shot's ``id``, its page ``url``, the HTTP ``status``."""

    id: str
    url: str
    status: int


ShotLike = Union[ShotRecord, Mapping[str, Any], bytes, str]


class VisualizerUploader:
    """Uploads shots to Visualizer (or a server speaking its upload API).

    :param url: the upload endpoint (default ``$PYBURNERKIT_VISUALIZER_URL`` when it is set,
        else :data:`DEFAULT_URL`); ``http://`` only to a loopback address unless ``allow_insecure``.
    :param username: the Visualizer user (default ``$PYBURNERKIT_VISUALIZER_USERNAME``).
    :param password: the password or upload token (default ``$PYBURNERKIT_VISUALIZER_PASSWORD``).
    :param timeout: seconds for connecting and for the answer, 0.1..600 (finite).
    :param min_flow_time_s: refuse shots whose flow lasted less (pyDE1: 10 s); 0 = no limit.
    :param allow_insecure: allow plain HTTP to a host that is not loopback (the password then
        crosses the network readable).
    :param environ: where the defaults come from (default ``os.environ``).
    :raises ConfigurationError: a malformed URL, credentials in the URL, plain HTTP to another
        host, or a value out of range. Missing credentials are only refused by :meth:`upload`.
    """

    def __init__(self, url: Optional[str] = None, username: Optional[str] = None,
                 password: Optional[str] = None, *, timeout: float = 10.0,
                 min_flow_time_s: float = 0.0, allow_insecure: bool = False,
                 environ: Optional[Mapping[str, str]] = None) -> None:
        env = os.environ if environ is None else environ
        url = url or env.get(ENV_URL) or DEFAULT_URL
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - parsing the port raises on a malformed one
        except ValueError:
            raise ConfigurationError(f"the Visualizer URL is malformed: "
                                     f"{_safe_url(url)}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("the Visualizer URL must be http(s)://host/path, got "
                                     f"{_safe_url(url)}")
        if parts.username is not None or parts.password is not None:
            # repeating the URL would repeat the secret: say what is wrong, not what it was
            raise ConfigurationError("the Visualizer URL must not carry credentials "
                                     "(user:password@host): give username and password, or "
                                     f"set {ENV_USERNAME} and {ENV_PASSWORD}")
        if parts.scheme == "http" and not allow_insecure and not _loopback(parts.hostname):
            raise ConfigurationError(f"plain HTTP to {parts.hostname} would send the Visualizer "
                                     f"password readable: use https:// (or "
                                     f"allow_insecure=True)")
        self.url = url
        self._parts = parts
        self.timeout = float(check_range("timeout", timeout, 0.1, 600, "s"))
        self.min_flow_time_s = float(check_range("min_flow_time_s", min_flow_time_s, 0, 600,
                                                 "s"))
        self._username = username if username is not None else env.get(ENV_USERNAME)
        self._password = password if password is not None else env.get(ENV_PASSWORD)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None,
                 **options: Any) -> "VisualizerUploader":
        """URL and credentials from the environment (see the module docs)."""
        return cls(environ=environ, **options)

    @classmethod
    def from_config(cls, config: Mapping[str, Any],
                    environ: Optional[Mapping[str, str]] = None) -> "VisualizerUploader":
        """From a mapping with ``url``, ``username``, ``password``, ``timeout``,
        ``min_flow_time`` (seconds) and ``allow_insecure``; pyDE1's upper-case keys
        (``USERNAME``, ``PASSWORD``, ``MIN_FLOW_TIME``) are accepted too. What the mapping
        leaves out comes from the environment.

        :raises ConfigurationError: an unknown key (named, its value never shown).
        """
        known = {"url", "username", "password", "timeout", "min_flow_time", "allow_insecure",
                 "retry_hold_off"}
        options: Dict[str, Any] = {}
        for key, value in config.items():
            name = str(key).lower()
            if name not in known:
                raise ConfigurationError(f"unknown Visualizer setting {key!r}; known: "
                                         f"{', '.join(sorted(known))}")
            if name == "min_flow_time":
                options["min_flow_time_s"] = float(value)
            elif name == "retry_hold_off":
                continue  # pyDE1's re-queue delay: nothing here retries a write
            elif name == "allow_insecure":
                options[name] = bool(value)
            elif name == "timeout":
                options[name] = float(value)
            else:
                options[name] = None if value is None else str(value)
        return cls(environ=environ, **options)

    @classmethod
    def from_file(cls, path: str, environ: Optional[Mapping[str, str]] = None
                  ) -> "VisualizerUploader":
        """From the ``[visualizer]`` table of a TOML file (keys as :meth:`from_config`).

        :raises ConfigurationError: an unreadable file, bad TOML or no ``[visualizer]`` table.
        """
        try:
            import tomllib as toml  # Python 3.11+
        except ImportError:  # pragma: no cover - older Pythons get tomli from install_requires
            import tomli as toml  # type: ignore[no-redef,import-not-found,unused-ignore]
        try:
            with open(path, "rb") as fh:
                data = toml.load(fh)
        except OSError as exc:
            raise ConfigurationError(f"cannot read {path!r}: {exc.strerror}") from None
        except toml.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path!r} is not valid TOML: {exc}") from None
        section = data.get("visualizer")
        if not isinstance(section, Mapping):
            raise ConfigurationError(f"{path!r} has no [visualizer] table")
        return cls.from_config(section, environ=environ)

    @property
    def has_credentials(self) -> bool:
        return bool(self._username) and bool(self._password)

    def __repr__(self) -> str:
        creds = "set" if self.has_credentials else "missing"
        return f"VisualizerUploader({_safe_url(self.url)}, credentials {creds})"

    # ------------------------------------------------------------------ upload
    def payload(self, shot: ShotLike) -> bytes:
        """The file that would be uploaded for ``shot`` (JSON for a record or a mapping;
        bytes and text as given, e.g. a ``.shot`` file).

        :raises ConfigurationError: a shot shorter than ``min_flow_time_s``, or an empty one.
        """
        if isinstance(shot, ShotRecord):
            duration = shot.elapsed_s[-1] if shot.elapsed_s else 0.0
            if duration < self.min_flow_time_s:
                raise ConfigurationError(
                    f"the shot flowed {duration:.1f} s: the limit is at least "
                    f"{self.min_flow_time_s:g} s (min_flow_time_s); not uploaded")
            return json.dumps(visualizer_json(shot)).encode("utf-8")
        if isinstance(shot, Mapping):
            return json.dumps(dict(shot)).encode("utf-8")
        if isinstance(shot, str):
            shot = shot.encode("utf-8")
        if isinstance(shot, (bytes, bytearray)) and shot:
            return bytes(shot)
        raise ConfigurationError(f"a shot must be a ShotRecord, a mapping or file contents, "
                                 f"got {type(shot).__name__ if shot is not None else None}")

    def upload(self, shot: ShotLike, *, filename: Optional[str] = None,
               timeout: Optional[float] = None) -> VisualizerUpload:
        """POST one shot; blocks (on the calling thread) until the server answered or
        ``timeout`` (default: the uploader's) passed. Never retried: if it times out, the
        server may still have stored the shot.

        :returns: the shot's id and page.
        :raises ConfigurationError: no credentials, or a shot :meth:`payload` refuses
            (nothing was sent).
        :raises AuthenticationError: the server refused the credentials (401/403).
        :raises DeviceError: any other refusal (``code`` = the HTTP status), or an answer
            without an id.
        :raises DeviceConnectionError: the server could not be reached.
        :raises DeviceTimeoutError: no answer within ``timeout``.
        """
        if not self.has_credentials:
            raise ConfigurationError(f"no Visualizer credentials: pass username and password, "
                                     f"or set {ENV_USERNAME} and {ENV_PASSWORD}")
        seconds = self.timeout if timeout is None else float(
            check_range("timeout", timeout, 0.1, 600, "s"))
        data = self.payload(shot)
        name = filename or _default_filename(shot)
        boundary = uuid.uuid4().hex
        body = b"".join((
            f"--{boundary}\r\n".encode("ascii"),
            f'Content-Disposition: form-data; name="file"; filename="{_quote(name)}"\r\n'
            .encode("utf-8"),
            b"Content-Type: application/json\r\n\r\n" if name.endswith(".json")
            else b"Content-Type: application/octet-stream\r\n\r\n",
            data, f"\r\n--{boundary}--\r\n".encode("ascii")))
        token = base64.b64encode(f"{self._username}:{self._password}".encode("utf-8"))
        headers = {"Authorization": "Basic " + token.decode("ascii"),
                   "Content-Type": f"multipart/form-data; boundary={boundary}",
                   "Content-Length": str(len(body)), "Accept": "application/json",
                   "User-Agent": "pyburnerkit"}
        parts = self._parts
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn_type = (http.client.HTTPSConnection if parts.scheme == "https"
                     else http.client.HTTPConnection)
        conn = conn_type(parts.hostname or "", parts.port, timeout=seconds)
        where = f"{parts.scheme}://{parts.netloc}"
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            status = response.status
            reply = response.read(_MAX_REPLY)
        except (socket.timeout, TimeoutError) as exc:
            raise DeviceTimeoutError(f"Visualizer at {where} did not answer within "
                                     f"{seconds:g} s (the shot may still have been stored; "
                                     f"not retried)", device="visualizer",
                                     endpoint=where) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise DeviceConnectionError(f"cannot upload to Visualizer at {where}: "
                                        f"{self._scrub(str(exc))}", device="visualizer",
                                        endpoint=where) from None
        finally:
            conn.close()
        text = self._scrub(reply.decode("utf-8", "replace"))
        if status in (401, 403):
            raise AuthenticationError(f"Visualizer at {where} refused the credentials "
                                      f"(HTTP {status})", device="visualizer", endpoint=where)
        if not 200 <= status < 300:
            raise DeviceError(f"Visualizer at {where} refused the upload: HTTP {status}: "
                              f"{text[:300]}", code=status, detail=text[:2000],
                              device="visualizer", endpoint=where)
        try:
            answer = json.loads(text)
            shot_id = str(answer["id"])
        except (ValueError, KeyError, TypeError):
            raise DeviceError(f"Visualizer at {where} answered HTTP {status} without a shot "
                              f"id: {text[:300]}", code=status, detail=text[:2000],
                              device="visualizer", endpoint=where) from None
        page = f"{where}/shots/{shot_id}"
        log.info("shot uploaded to Visualizer: %s", page)
        return VisualizerUpload(shot_id, page, status)

    def _scrub(self, text: str) -> str:
        """``text`` without the credentials (a server may echo what it was sent)."""
        for secret in (self._password, self._username):
            if secret:
                text = text.replace(secret, _MASK)
        return text


def _default_filename(shot: ShotLike) -> str:
    if isinstance(shot, ShotRecord):
        return f"{int(shot.start_time)}.json"
    if isinstance(shot, Mapping):
        return "shot.json"
    return "shot.shot"


def _quote(name: str) -> str:
    return name.replace("\\", "_").replace('"', "_").replace("\r", "_").replace("\n", "_")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _safe_url(url: Any) -> str:
    """A URL fit for an error message: without any user information."""
    try:
        parts = urlsplit(str(url))
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable)"
    host = parts.hostname or ""
    return repr(f"{parts.scheme}://{host}{port}{parts.path}") if parts.scheme else "(no scheme)"
