"""Pull an espresso shot and stop it at a weight, with a DE1 and a Skale II over BLE.

    python examples/de1_shot.py                          # against the built-in simulator
    python examples/de1_shot.py DE1_ADDRESS SKALE_ADDRESS  # real machine and scale

With no addresses it starts the simulated DE1 pouring into a simulated Skale (one bench, sped
up 6x, ``pyburnerkit.rigs.espresso.DE1Rig``) behind a fake gatttool put first on PATH, so the
very same pygatt path runs as with hardware. (A single simulated device needs none of this:
``DE1Client("sim://")``.)
"""

import os
import shutil
import sys
import tempfile

from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.sequencer import ShotSequencer
from pyburnerkit.scale.client import SkaleClient

PROFILE = {
    "version": "2", "title": "Example 9 bar", "beverage_type": "espresso",
    "target_weight": 36, "target_volume_count_start": 1,
    "steps": [
        {"name": "fill", "pump": "flow", "flow": 4, "temperature": 92, "seconds": 10,
         "transition": "fast", "sensor": "coffee",
         "exit": {"type": "pressure", "condition": "over", "value": 3}},
        {"name": "pour", "pump": "pressure", "pressure": 9, "temperature": 92, "seconds": 45,
         "transition": "smooth", "sensor": "coffee"},
    ],
}


def main() -> None:
    rig = None
    tools = None
    time_scale = 1.0
    fast = {}
    try:
        if len(sys.argv) >= 3:
            de1_address, scale_address = sys.argv[1], sys.argv[2]
        else:
            from pyburnerkit.rigs.espresso import DE1Rig
            time_scale = 6.0
            # made before the rig starts, so the finally below removes it whatever fails
            tools = tempfile.mkdtemp(prefix="de1-example-")
            rig = DE1Rig(speed=time_scale).start()
            rig.tool_dir(tools)
            os.environ["PATH"] = tools + os.pathsep + os.environ["PATH"]
            de1_address, scale_address = rig.de1.address, rig.skale.address
            fast = {"send_delay": 0.002}  # no radio: skip pexpect's 50 ms pause per command
            print(f"using the simulator (fake gatttool in {tools})")
        with DE1Client(de1_address, allow_writes=True, allow_remote_start=True, **fast) as de1, \
                SkaleClient(scale_address, time_scale=time_scale, allow_writes=True,
                            **fast) as scale:
            print(f"DE1 firmware {de1.info.firmware_build}, state {de1.state.name}, "
                  f"water {de1.water_levels.level_mm:.1f} mm; scale {scale.info.model}")
            program = de1.upload_profile(PROFILE)
            print(f"profile {program.title!r} uploaded, fingerprint {program.fingerprint[:12]}")
            de1.wake()
            with ShotSequencer(de1, scale, time_scale=time_scale) as seq:  # 36 g from profile
                de1.start_espresso()
                try:
                    shot = seq.wait_complete(timeout=300)
                except BaseException:  # Ctrl-C or no end: never leave the machine pouring
                    de1.stop_flow()
                    raise
            print(f"stopped by {shot.stop_reason}: {shot.final_weight_g:.1f} g in "
                  f"{shot.elapsed_s[-1]:.1f} s, peak {max(shot.pressure_bar):.1f} bar, "
                  f"{sum(de1.volume):.1f} mL")
    finally:
        if rig is not None:
            rig.close()
        if tools is not None:
            shutil.rmtree(tools, ignore_errors=True)


if __name__ == "__main__":
    main()
