"""pyDE1's own Python usage, ported by changing the imports only (the changed line keeps the
original as a comment), against pyburnerkit's simulators and a real SQLite file."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from contextlib import redirect_stdout
from pathlib import Path

from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.library import ProfileLibrary

from ..de1.test_profile_firmware import PROFILE


def test_profile_module_example(tmp_path: Path) -> None:
    """pyDE1 ``de1/profile.py``'s ``__main__`` block: load a profile, print its frames."""
    path = tmp_path / "jmk_eb5.json"
    path.write_text(json.dumps(PROFILE, indent=4), encoding="utf-8")
    out = io.StringIO()
    with redirect_stdout(out):
        # from pyDE1.de1.profile import ProfileByFrames
        from pyburnerkit.de1.compat import ProfileByFrames

        profile = ProfileByFrames()
        profile.from_json_file(str(path))
        h = profile.header_write()
        f = profile.shot_frame_writes()
        for sf in f:
            print(sf.as_wire_bytes().hex(" "), sf.log_string(), sep=" ")
        e = profile.ext_shot_frame_writes()
        t = profile.shot_tail_write()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("00 47 40 b8 50 40 00 00")  # frame 0 as pyburnerkit's codec
    assert lines[1].startswith("01 70 90 b9 9e 00 00 64")
    assert h.as_wire_bytes() == bytes.fromhex("0102010060")
    assert [x.as_wire_bytes()[0] for x in e] == [33]  # the limiter's extension frame
    assert t.FrameToWrite == 2
    assert profile.id == hashlib.sha1(path.read_bytes()).hexdigest()
    assert profile.validate() and profile.target_weight == 36.0


def test_upload_json_v2_profile_then_select_by_id(tmp_path: Path) -> None:
    """pyDE1's ``upload_json_v2_profile`` / ``store_json_v2_profile`` / ``set_profile_by_id``
    flow (``PUT de1/profile``, ``PUT de1/profile/store``, ``PUT de1/profile/id``)."""
    # from pyDE1.de1.profile import ProfileByFrames
    from pyburnerkit.de1.compat import ProfileByFrames

    source = json.dumps(PROFILE).encode("utf-8")
    pbf = ProfileByFrames().from_json(source)
    lib = ProfileLibrary(str(tmp_path / "pyburnerkit.db"))
    with DE1Client("sim://?speed=10", allow_writes=True, timeout=5.0).connect() as de1:
        de1.upload_profile(pbf.program, library=lib)
        stored = {"id": pbf.id, "fingerprint": pbf.fingerprint}
        assert lib.selected == stored["id"]
        other = dict(PROFILE, title="Second")
        second = lib.store(json.dumps(other))
        de1.set_profile_by_id(second.id, lib)  # pyDE1's name for the select-by-id upload
        assert lib.selected == second.id
        assert de1.profile is not None and de1.profile.title == "Second"
    # pyDE1's own query for the selected profile, against the same file
    db = sqlite3.connect(lib.path)
    try:
        (source_back, fmt), = db.execute("SELECT source, source_format FROM profile "
                                         "WHERE id == :id", (stored["id"],)).fetchall()
    finally:
        db.close()
    assert source_back == source and fmt == "JSONv2"


def test_state_names_as_pyde1_visualizer_uses_them() -> None:
    """``pyde1_visualizer.py`` compares payload names with ``API_MachineStates.X.name``."""
    # from pyDE1.de1.c_api import API_MachineStates, API_Substates
    from pyburnerkit.de1.compat import API_MachineStates, API_Substates

    with DE1Client("sim://?speed=10", allow_writes=True, allow_remote_start=True,
                   timeout=5.0) as de1:
        de1.wake()
        de1.start_espresso()
        de1.wait_for(lambda c: c.substate is not None and c.substate.name == "POUR"
                     or c.substate is not None and c.substate.name == "PRE_INFUSE",
                     timeout=30.0)
        state = API_MachineStates(int(de1.state or 0))
        substate = API_Substates(int(de1.substate or 0))
        de1.stop()
    assert state.name == API_MachineStates.Espresso.name and state.is_flow_state
    assert substate.name in (API_Substates.PreInfuse.name, API_Substates.Pour.name)
    assert substate.flow_phase == "during" and not substate.is_error_state


def test_mmr_by_pyde1_register_names() -> None:
    """pyDE1 reads registers by ``MMR0x80LowAddr`` member."""
    # from pyDE1.de1.c_api import MMR0x80LowAddr
    from pyburnerkit.de1.compat import MMR0x80LowAddr

    with DE1Client("sim://?speed=10", allow_writes=True, timeout=5.0) as de1:
        assert de1.read_mmr(MMR0x80LowAddr.CPU_FIRMWARE_BUILD) == [1333]
        assert de1.write_mmr(MMR0x80LowAddr.FAN_THRESHOLD, 55) == 55
        assert de1.registers[MMR0x80LowAddr.FAN_THRESHOLD.register_name or ""] == 55


def test_skale_timer_as_pyde1_scales_name_it() -> None:
    """pyDE1's scales: ``timer_start()``, ``timer_stop()``, ``timer_reset()``."""
    from pyburnerkit.scale.client import SkaleClient

    with SkaleClient("sim://?speed=10", allow_writes=True) as scale:
        scale.timer_reset()
        scale.timer_start()
        sim = scale.simulator
        assert sim is not None and sim.run(lambda: sim.skale.timer_running)
        scale.timer_stop()
        assert not sim.run(lambda: sim.skale.timer_running)
