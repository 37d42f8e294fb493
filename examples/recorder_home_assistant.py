"""Publish a heater to MQTT with Home Assistant discovery (and keep a local SQLite copy).

    python examples/recorder_home_assistant.py --broker localhost --port 1883
    python examples/recorder_home_assistant.py --broker ha.lan --port 8883 --tls \\
        --username recorder --password-env MQTT_PASSWORD --heater 192.168.4.1

Home Assistant (MQTT integration, discovery on) then shows a device "afterburner cabin": the
temperatures, state and fuel use on the dashboard, settings and network details as
diagnostics disabled by default (docs/home-assistant.rst describes it all). The heater is
opened read-only here, so nothing can be changed from Home Assistant; allow_writes=True on the
client turns its set point, start and stop into controls. If the broker goes away, samples
wait in the spool and are sent when it is back.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from pyburnerkit.afterburner import AfterburnerClient
from pyburnerkit.recorder import (AfterburnerSource, MqttSink, Recorder, RecorderProgress,
                                  SinkHealthChanged, SQLiteSink)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default="localhost")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--username", default=None)
    parser.add_argument("--password-env", default="MQTT_PASSWORD",
                        help="environment variable holding the password")
    parser.add_argument("--heater", default="sim://?speed=30&tick=0.1")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--spool-dir", default=None,
                        help="keep what the broker did not take here for the next run "
                             "(default: a temporary folder, removed on exit)")
    args = parser.parse_args()
    # the local copy and the spool live in a folder that goes away with the example
    with tempfile.TemporaryDirectory(prefix="pbk-example-") as workdir:
        record(args, workdir)


def record(args: argparse.Namespace, workdir: str) -> None:
    mqtt = MqttSink(args.broker, args.port, tls=args.tls, username=args.username,
                    password=os.environ.get(args.password_env), discovery_prefix="homeassistant")
    local = SQLiteSink(os.path.join(workdir, "heater.db"))
    heater = AfterburnerClient(args.heater, retry_first=True)
    recorder = Recorder([AfterburnerSource(heater, device="cabin", owns_client=True)],
                        [mqtt, local], progress_interval=1.0,
                        spool_dir=args.spool_dir or os.path.join(workdir, "spool"))
    recorder.subscribe(lambda e: print(e.format()), RecorderProgress)
    recorder.subscribe(lambda e: print(f"sink {e.sink}: {'up' if e.healthy else e.error}"),
                       SinkHealthChanged)
    with recorder:
        recorder.join(args.seconds)  # record for the requested time (Ctrl-C stops early)
    # what really happened: each sink's state (connected or refused), written, spooled, lost
    for line in recorder.report():
        print(line)
    if recorder.sink("mqtt").spooled and args.spool_dir is None:
        print("(the spool is in this example's temporary folder and is removed now; "
              "--spool-dir DIR keeps it for the next run)")
    # only what the broker acknowledged counts as published or announced
    print(f"published {recorder.sink('mqtt').written} samples; "
          f"{mqtt.announced} Home Assistant entities announced")

if __name__ == "__main__":
    main()
