"""Print a DE1's state, settings and live telemetry for a few seconds.

    python examples/de1_monitor.py [ENDPOINT] [SECONDS]

ENDPOINT is the DE1's Bluetooth address (``00:A0:50:DE:01:01``); with none it is
``sim://?speed=4``: a simulated DE1, run by the client in this process 4x faster than real
time.
"""

import sys
import time

from pyburnerkit.de1 import DE1Client
from pyburnerkit.de1.models import ShotSampleEvent, StateChanged


def main() -> None:
    endpoint = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else "sim://?speed=4"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    with DE1Client(endpoint) as de1:
        info = de1.info
        print(f"{info.machine_model.name} firmware {info.firmware_build}, serial "
              f"{info.serial_number:08x}, GHC {'active' if info.ghc_active else 'inactive'}")
        print(f"state {de1.state.name}/{de1.substate.text}; group "
              f"{de1.shot_settings.group_temp_c:.1f} °C; fan threshold "
              f"{de1.registers['fan_threshold']:.0f} °C")

        def show(event):
            if isinstance(event, StateChanged):
                print(f"state -> {event.state.name}/{event.substate.text}")
            else:
                s = event.sample
                print(f"  {s.group_pressure_bar:4.1f} bar {s.group_flow_ml_s:4.1f} mL/s "
                      f"head {s.head_temp_c:5.1f} °C frame {s.frame_number}")

        with de1.subscribe(show, StateChanged, ShotSampleEvent):
            time.sleep(seconds)  # callbacks print on the client's events thread meanwhile


if __name__ == "__main__":
    main()
