"""``pyburnerkit serve``: one long-running process that owns a set of devices and serves them
over HTTP (a generic API for every family under ``/api/v1/`` and pyDE1's API for a DE1 and its
scale) and MQTT, built from the same public clients a script uses.

Quick start::

    from pyburnerkit.service import Service, load_service_config

    service = Service.from_config(load_service_config("service.toml")).start()
    print(service.url)          # http://127.0.0.1:1234
    ...
    service.close()

The HTTP server is waitress (``pip install "pyburnerkit[service]"``). See ``docs/service.rst``.
"""

from .api import GenericApi, ServiceApp
from .config import (HttpSettings, MqttSettings, ServiceConfig, ServiceSettings,
                     load_service_config, parse_service_config)
from .server import HttpServer
from .service import Service
from .state import DeviceHub
from .systemd import Notifier

__all__ = ["Service", "ServiceConfig", "HttpSettings", "MqttSettings", "ServiceSettings",
           "load_service_config", "parse_service_config", "GenericApi", "ServiceApp",
           "DeviceHub", "HttpServer", "Notifier"]
