"""Print a DE1's state, settings and live telemetry for a few seconds.

    python examples/de1_monitor.py [DE1_ADDRESS] [SECONDS]

With no address it runs against the built-in simulator through pygatt and a fake gatttool.
"""

import os
import shutil
import sys
import tempfile
import time

from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.models import ShotSampleEvent, StateChanged


def main() -> None:
    rig = None
    address = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    if address is None:
        from pyburnerkit.de1.sim import DE1Rig
        rig = DE1Rig(speed=4.0, with_scale=False).start()
        tools = rig.tool_dir(tempfile.mkdtemp(prefix="de1-example-"))
        os.environ["PATH"] = tools + os.pathsep + os.environ["PATH"]
        address = rig.de1.address
    try:
        with DE1Client(address) as de1:
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
                time.sleep(seconds)  # callbacks print on the events thread meanwhile
    finally:
        if rig is not None:
            rig.close()
            shutil.rmtree(tools, ignore_errors=True)


if __name__ == "__main__":
    main()
