"""The long-running service: a recorder over the configured devices (with or without sinks),
the HTTP API (generic ``/api/v1`` and pyDE1's paths), pyDE1's outbound MQTT topics, and
systemd integration.

Threads it adds to those of the recorder and the clients: ``pyburnerkit-service-http`` (the
server's socket loop), waitress's ``waitress-N`` request workers, and, under a systemd
watchdog, ``pyburnerkit-service-watchdog``. :meth:`Service.close` stops all of them against one
deadline.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from .._core.timeouts import Deadline
from ..errors import ConfigurationError
from ..recorder.commands import Commands
from ..recorder.recorder import DeviceStateChanged, Recorder, SamplesReceived
from .api import GenericApi, ServiceApp
from .config import DEFAULT_PORT, MqttSettings, ServiceConfig, check_bind, is_loopback
from .server import HttpServer
from .state import DeviceHub
from .systemd import Notifier

log = logging.getLogger(__name__)

__all__ = ["Service"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


class Service:
    """One process that owns a set of devices and serves them over HTTP (and MQTT).

    :param sources: recorder sources (or clients) of the devices; the service owns them and
        closes their clients (an owned source's) when it closes, or when this constructor
        fails.
    :param sinks: recorder sinks; none at all is fine (nothing is recorded, the API still
        follows every device).
    :param alerts: / :param controls: / :param recorder_options: passed to the
        :class:`~pyburnerkit.recorder.Recorder` (``controls``: the fields controllable
        although not marked safe, per ``"family/device"``).
    :param host: / :param port: where to listen (port 0: a free one, see :attr:`url`).
    :param token: the bearer token every request must carry; needed to bind a non-loopback
        address unless ``insecure``. Never logged or shown.
    :param threads: HTTP worker threads; :param max_streams: event streams open at once.
    :param request_timeout: seconds a request's device call may take (then 504).
    :param shutdown_timeout: the default bound of :meth:`close`.
    :param mqtt: a broker for pyDE1's outbound topics (used when a DE1 or a scale is served).
    :param cleanups: called after the clients closed (simulators of a demo).
    :param notifier: systemd notifications (default: from the environment; nothing outside
        systemd).
    :param log_file: / :param log_level: a log file for the ``pyburnerkit`` and ``waitress``
        loggers, reopened by :meth:`reopen_logs` (SIGHUP).
    :param profile_db: the SQLite file of pyDE1's profile library (default: the library's
        file in the working directory).
    :raises ConfigurationError: a non-loopback ``host`` without ``token`` or ``insecure``,
        two devices with the same id, bad recorder options.
    """

    def __init__(self, sources: Iterable[Any], *, sinks: Sequence[Any] = (),
                 alerts: Iterable[Any] = (), controls: Optional[Mapping[str, Any]] = None,
                 recorder_options: Optional[Mapping[str, Any]] = None,
                 host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 token: Optional[str] = None, insecure: bool = False, threads: int = 16,
                 max_streams: int = 8, request_timeout: float = 5.0,
                 shutdown_timeout: float = 10.0, mqtt: Optional[MqttSettings] = None,
                 cleanups: Iterable[Callable[[], Any]] = (),
                 notifier: Optional[Notifier] = None, log_file: Optional[str] = None,
                 log_level: str = "info", profile_db: Optional[str] = None) -> None:
        self._cleanups = list(cleanups)
        sources = list(sources)
        try:
            check_bind(host, token, insecure)
            if isinstance(request_timeout, bool) or not isinstance(request_timeout,
                                                                   (int, float)) \
                    or not request_timeout > 0:
                raise ConfigurationError(f"request_timeout must be a positive number of "
                                         f"seconds, got {request_timeout!r}")
            options = dict(recorder_options or {})
            options.setdefault("progress_interval", None)
            self.recorder = Recorder(sources, list(sinks), alerts=alerts, controls=controls,
                                     **options)
            self.hub = DeviceHub(self.recorder.sources)
            # the service's own router: each change runs on its request's thread, with the
            # request timeout, so a slow device never holds up another's request
            self.commands = Commands(self.recorder.sources, controls=controls,
                                     timeout=request_timeout)
        except BaseException:
            for source in sources:
                close = getattr(source, "close_client", None)
                if callable(close):
                    close(1.0)
            self._run_cleanups()
            raise
        self.host = host
        self.port = port
        self.threads = threads
        self.request_timeout = float(request_timeout)
        self.shutdown_timeout = shutdown_timeout
        self.mqtt = mqtt
        self.notifier = notifier if notifier is not None else Notifier()
        self.log_file = log_file
        self.log_level = log_level
        self.profile_db = profile_db
        self._token = token
        self.api = GenericApi(self.hub, self.commands, max_streams=max_streams,
                              token=bool(token))
        self.pyde1_app = self._make_pyde1_app()
        self.app = ServiceApp(self.api, self.pyde1_app, token,
                              loopback_only=is_loopback(host))
        self.server: Optional[HttpServer] = None
        self.publisher: Any = None
        self._log_handler: Optional[logging.FileHandler] = None
        self._lock = threading.Lock()
        self._state = "idle"

    @classmethod
    def from_config(cls, config: ServiceConfig, **overrides: Any) -> "Service":
        """A service (not started) built from a parsed config; ``overrides`` replace any
        constructor argument (``host=``, ``port=``...).

        :raises ConfigurationError: see the constructor and the recorder's config.
        """
        rec = config.recorder
        sinks = rec.build_sinks()
        sources = rec.build_sources()
        controls = {f"{source.family}/{source.device}": spec.controls
                    for spec, source in zip(rec.devices, sources) if spec.controls}
        options = {k: v for k, v in rec.recorder.items()
                   if k not in ("env_file", "command_timeout")}
        kwargs: Dict[str, Any] = dict(
            sinks=sinks, alerts=rec.alerts, controls=controls, recorder_options=options,
            host=config.http.host, port=config.http.port, token=config.http.token,
            insecure=config.http.insecure, threads=config.http.threads,
            max_streams=config.http.max_streams,
            request_timeout=config.service.request_timeout,
            shutdown_timeout=config.service.shutdown_timeout, mqtt=config.mqtt,
            log_file=config.service.log_file, log_level=config.service.log_level,
            profile_db=config.service.profile_db)
        kwargs.update(overrides)
        return cls(sources, **kwargs)

    def __repr__(self) -> str:
        where = self.url if self.server is not None else f"{self.host}:{self.port}"
        return (f"<Service {self._state} {where} devices={len(self.hub.devices)} "
                f"token={'set' if self._token else 'none'}>")

    # ------------------------------------------------------------------ parts
    def _client(self, family: str) -> Any:
        for source in self.recorder.sources:
            if source.family == family and getattr(source, "client", None) is not None:
                return source.client
        return None

    def _make_pyde1_app(self) -> Any:
        de1, scale = self._client("de1"), self._client("scale")
        if de1 is None and scale is None:
            return None
        try:
            from .pyde1_http import Pyde1App  # type: ignore[import-not-found,unused-ignore]
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.pyde1_http":
                raise
            log.warning("pyDE1's HTTP API is not available in this installation")
            return None
        allow = bool(getattr(de1 if de1 is not None else scale, "allow_writes", False))
        # started in start(), after pyDE1's MQTT publisher subscribed to the DE1 (order)
        return Pyde1App(de1, scale, allow_writes=allow, request_timeout=self.request_timeout,
                        start=False, library=self.profile_db)

    def _start_publisher(self, deadline: Deadline) -> None:
        mqtt = self.mqtt
        de1, scale = self._client("de1"), self._client("scale")
        if mqtt is None or (de1 is None and scale is None):
            return
        try:
            from .pyde1_mqtt import Pyde1MqttPublisher  # type: ignore[import-not-found,unused-ignore]
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.pyde1_mqtt":
                raise
            log.warning("pyDE1's MQTT API is not available in this installation")
            return
        publisher = Pyde1MqttPublisher(
            de1, scale, host=mqtt.host, port=mqtt.port, topic_root=mqtt.topic_root,
            username=mqtt.username, password=mqtt.password, tls=mqtt.tls,
            ca_certs=mqtt.ca_certs, client_id=mqtt.client_id)
        self.publisher = publisher
        left = deadline.remaining()
        publisher.start(timeout=10.0 if left is None else max(0.1, left))

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:PORT``) once started."""
        if self.server is None:
            raise RuntimeError("the service is not started")
        return self.server.url

    def start(self, timeout: float = 30.0) -> "Service":
        """Open the log file, start the recorder (devices connect in the background), listen
        for HTTP, start pyDE1's MQTT publisher, tell systemd it is ready.

        Blocks until the server listens and the publisher started (``timeout`` bounds the
        latter). On failure everything started is closed again.

        :raises ConfigurationError: the address cannot be bound, the log file cannot be
            opened.
        :raises BackendUnavailableError: waitress is not installed.
        """
        with self._lock:
            if self._state != "idle":
                raise RuntimeError("a Service is started once")
            self._state = "starting"
        deadline = Deadline(timeout)
        try:
            self._open_log()
            self.recorder.subscribe(self.hub.on_event, SamplesReceived, DeviceStateChanged)
            self.recorder.start()
            self._start_publisher(deadline)
            if self.pyde1_app is not None:
                sequencer = getattr(self.pyde1_app, "sequencer", None)
                if self.publisher is not None and sequencer is not None:
                    self.publisher.attach_sequencer(sequencer)
                self.pyde1_app.start()
            self.server = HttpServer(self.app, self.host, self.port, threads=self.threads)
            self.server.start()
        except BaseException:
            self.close(timeout=self.shutdown_timeout)
            raise
        with self._lock:
            if self._state == "starting":
                self._state = "running"
        log.info("service listening on %s (%d devices)", self.url, len(self.hub.devices))
        self.notifier.ready(f"serving {len(self.hub.devices)} devices on {self.url}")
        self.notifier.start_watchdog(lambda: self.server is not None and self.server.running)
        return self

    def close(self, timeout: Optional[float] = None) -> bool:
        """Stop everything: event streams, the MQTT publisher, the recorder (flushing its
        sinks, closing the devices' clients, which ends any device call in flight), the HTTP
        server and its workers, the demo's simulators.

        Blocks until all of it ended or ``timeout`` seconds (default: ``shutdown_timeout``)
        passed. Idempotent; safe from any thread but the server's own.

        :returns: True when everything stopped in time (and the recorder lost nothing).
        """
        with self._lock:
            first = self._state != "closed"
            self._state = "closed"
        if not first:
            return True
        deadline = Deadline(self.shutdown_timeout if timeout is None else timeout)
        self.notifier.stopping()
        ok = True
        self.api.stop()
        self.hub.close()
        if self.publisher is not None:
            try:
                ok = bool(self.publisher.close(timeout=_left(deadline))) and ok
            except Exception:
                log.exception("closing pyDE1's MQTT publisher failed")
                ok = False
        close_app = getattr(self.pyde1_app, "close", None)
        if callable(close_app):
            try:
                close_app(timeout=_left(deadline))
            except Exception:
                log.exception("closing pyDE1's HTTP app failed")
        ok = self.recorder.close(timeout=deadline.remaining()) and ok
        if self.server is not None:
            ok = self.server.close(timeout=deadline.remaining()) and ok
        self._run_cleanups()
        ok = self.notifier.close(deadline.remaining()) and ok
        self._close_log()
        return ok

    def _run_cleanups(self) -> None:
        cleanups, self._cleanups = self._cleanups, []
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception:
                log.exception("a cleanup of the service failed")

    def __enter__(self) -> "Service":
        if self._state == "idle":
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ logging
    def _open_log(self) -> None:
        if not self.log_file:
            return
        try:
            handler = logging.FileHandler(self.log_file, encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"log_file {self.log_file!r} cannot be opened: "
                                     f"{exc.strerror or exc}") from None
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
        level = _LEVELS.get(self.log_level, logging.INFO)
        handler.setLevel(level)
        for name in ("pyburnerkit", "waitress"):
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            if logger.level == logging.NOTSET or logger.level > level:
                logger.setLevel(level)
        self._log_handler = handler

    def reopen_logs(self) -> None:
        """Reopen the log file (after logrotate moved it); the SIGHUP action. Any thread."""
        handler = self._log_handler
        if handler is None:
            return
        handler.acquire()
        try:
            old = handler.setStream(handler._open())
        finally:
            handler.release()
        if old is not None:
            old.close()
        log.info("log file reopened")

    def _close_log(self) -> None:
        handler, self._log_handler = self._log_handler, None
        if handler is None:
            return
        for name in ("pyburnerkit", "waitress"):
            logging.getLogger(name).removeHandler(handler)
        handler.close()

    # ------------------------------------------------------------------ helpers
    def devices(self) -> List[str]:
        return list(self.hub.devices)


def _left(deadline: Deadline) -> float:
    left = deadline.remaining()
    return 5.0 if left is None else max(0.0, left)
