"""Record a heater into SQLite, then read the recording back (no hardware needed).

    python examples/recorder_sqlite.py                       # the built-in simulator
    python examples/recorder_sqlite.py --url 192.168.4.1 --seconds 60 --db heater.db

The database is readable while recording (WAL mode): try
``sqlite3 heater.db "select * from device_afterburner_cabin order by ts desc limit 5"``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import os

from pyburnerkit.afterburner import AfterburnerClient
from pyburnerkit.recorder import (AfterburnerSource, AlertChanged, AlertRule, Recorder,
                                  SQLiteSink, read_samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="sim://?speed=30&tick=0.1",
                        help="heater URL (default: the built-in simulator, 30x speed)")
    parser.add_argument("--db", default=None, help="SQLite file (default: a temporary one)")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    # the temporary database and the spool go away with the example
    with tempfile.TemporaryDirectory(prefix="pbk-example-") as workdir:
        record(args, workdir)


def record(args: argparse.Namespace, workdir: str) -> None:
    db = args.db or os.path.join(workdir, "heater.db")

    heater = AfterburnerClient(args.url, retry_first=True)
    rules = [AlertRule("cold-cabin", field="TempCurrent", below=10, hysteresis=1)]
    recorder = Recorder([AfterburnerSource(heater, device="cabin", owns_client=True)],
                        [SQLiteSink(db)], alerts=rules, progress_interval=1.0,
                        spool_dir=os.path.join(workdir, "spool"))
    recorder.subscribe(lambda e: print("alert:", e.message), AlertChanged)
    with recorder:
        recorder.join(args.seconds)  # record for the requested time
        print(recorder.progress().format())

    rows = list(read_samples(db, field="TempCurrent"))
    print(f"{len(rows)} TempCurrent samples in {db}; last: "
          f"{rows[-1]['value'] if rows else '-'} {rows[-1]['unit'] if rows else ''}")
    conn = sqlite3.connect(db)
    try:
        for field, count in conn.execute(
                "SELECT field, COUNT(*) FROM device_afterburner_cabin GROUP BY field "
                "ORDER BY 2 DESC LIMIT 5"):
            print(f"  {field:<16} {count}")
    finally:
        conn.close()
    try:
        from pyburnerkit.recorder import to_dataframe
        frame = to_dataframe(db, field="TempCurrent")
        print(frame[["time", "value"]].tail(3).to_string(index=False))
    except ImportError:
        print('(pip install "pyburnerkit[pandas]" for to_dataframe())')


if __name__ == "__main__":
    main()
