"""Tare a Skale II and print weight and flow for a few seconds.

    python examples/scale_weigh.py [ENDPOINT] [SECONDS]

ENDPOINT is the scale's Bluetooth address (``CF:75:75:5E:A1:E5``); with none it is ``sim://``,
a simulated Skale that the client runs in this process (a 18.5 g dose is put on it after the
tare).
"""

import sys
import time

from pyburnerkit.scale import SkaleClient
from pyburnerkit.scale.models import WeightReading


def main() -> None:
    endpoint = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else "sim://"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    with SkaleClient(endpoint, allow_writes=True) as scale:  # tare changes the scale
        scale.tare()
        print(f"{scale.info.model} by {scale.info.manufacturer}: tared, {scale.weight:.1f} g")
        sim = scale.simulator  # None with a real scale
        if sim is not None:
            sim.run(lambda: setattr(sim.bench, "extra_g", 18.5))  # on the simulator's thread
        end = time.monotonic() + seconds
        for reading in scale.events(seconds, WeightReading):
            flow = reading.average_flow_g_s
            print(f"{reading.weight_g:6.1f} g" + ("" if flow is None else f"  {flow:5.2f} g/s"))
            if time.monotonic() >= end:
                break
        print(f"final {scale.weight:.1f} g, period {scale.period_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
