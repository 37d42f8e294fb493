"""Tare a Skale II and print weight and flow for a few seconds.

    python examples/scale_weigh.py [SKALE_ADDRESS] [SECONDS]

With no address it uses the simulated Skale (a 18.5 g dose is put on it after the tare).
"""

import os
import shutil
import sys
import tempfile
import time

from pyburnerkit.scale.client import SkaleClient
from pyburnerkit.scale.models import WeightReading


def main() -> None:
    rig = None
    address = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    if address is None:
        from pyburnerkit.de1.sim import DE1Rig
        rig = DE1Rig(speed=1.0).start()
        tools = rig.tool_dir(tempfile.mkdtemp(prefix="de1-example-"))
        os.environ["PATH"] = tools + os.pathsep + os.environ["PATH"]
        address = rig.skale.address
    try:
        with SkaleClient(address, allow_writes=True) as scale:  # tare changes the scale
            scale.tare()
            print(f"{scale.info.model} by {scale.info.manufacturer}: tared, "
                  f"{scale.weight:.1f} g")
            if rig is not None:
                rig.run(lambda: setattr(rig.bench, "extra_g", 18.5))
            end = time.monotonic() + seconds
            for reading in scale.events(seconds, WeightReading):
                flow = reading.average_flow_g_s
                print(f"{reading.weight_g:6.1f} g" + ("" if flow is None else
                                                      f"  {flow:5.2f} g/s"))
                if time.monotonic() >= end:
                    break
            print(f"final {scale.weight:.1f} g, period {scale.period_s * 1000:.0f} ms")
    finally:
        if rig is not None:
            rig.close()
            shutil.rmtree(tools, ignore_errors=True)


if __name__ == "__main__":
    main()
