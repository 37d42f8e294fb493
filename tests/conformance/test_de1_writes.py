"""Write safety of the DE1 (the Skale II has its own table in ``test_scale_writes.py``).

``WRITE_OPERATIONS`` names every operation that changes the machine, in the library and on
the command line. Each one is refused without its opt-in, with nothing reaching the simulated
DE1; each value-taking one refuses a value outside the DE1's limits before sending, naming the
value, the limit and the unit; every library one says in its docstring that a timed-out write
may still be applied; and no layer retries a write.

Opt-ins: ``allow_writes=True`` for settings, raw registers, the clock, profiles (also by their
id in a :class:`~pyburnerkit.de1.library.ProfileLibrary`), firmware, calibration, sleep and wake;
``allow_remote_start=True`` for starting a flow or maintenance run and for skipping to the next
frame (the sequencer's move-on-by-weight); ``--allow-writes`` on the command line for all of
them. ``ALWAYS_ALLOWED`` lists the device-changing calls that are deliberately never refused:
stopping (refusing a stop is never safer; the shot sequencer must be able to stop a shot that
was started on the machine) and the no-op request that only makes the DE1 report its state.
Commands whose words look device-changing but that touch no DE1 (the local profile library,
the Visualizer upload) are excused, with the reason, in ``test_write_table``'s
``NOT_DEVICE_CHANGING_CLI``; the library ones are proven harmless here.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from pyburnerkit import DeviceTimeoutError, Reconnect, WriteNotAllowedError
from pyburnerkit.cli.main import main
from pyburnerkit.de1 import codec
from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.firmware import make_test_image
from pyburnerkit.de1.library import ProfileLibrary, ProfileNotFoundError
from pyburnerkit.de1.models import MachineState as S, Mode
from pyburnerkit.de1.sequencer import ShotSequencer
from pyburnerkit.rigs.espresso import DE1Rig
from pyburnerkit.errors import ConfigurationError
from pyburnerkit.scale.client import SkaleClient

from ..ble.simrig import SPEED, RigOnPath, rig_on_path, sim_transport  # noqa: F401
from ..de1.test_profile_firmware import PROFILE
from ..helpers import wait_until
from .stress import WriteOp
from .test_de1 import DE1Harness
from .test_scale_writes import WRITE_OPERATIONS as SCALE_WRITE_OPERATIONS
from .test_write_table import NOT_DEVICE_CHANGING_CLI

NEVER_RETRIED = ("If this call times out, the device may still apply the write later; it is "
                 "never retried automatically.")
CAL_KEY = 0x1A2B3C4D
FAST = Reconnect(min_delay=0.05, max_delay=0.5, jitter=0.0)

DE1_WRITE_OPERATIONS: List[WriteOp] = [
    WriteOp("request_mode", note="wake/sleep: allow_writes; flow starts, clean, descale, "
                                 "transport, skip: allow_remote_start; see ALWAYS_ALLOWED"),
    WriteOp("wake", note="allow_writes (the DE1 heats up)"),
    WriteOp("sleep", note="allow_writes"),
    WriteOp("skip_to_next", note="allow_remote_start (steers a running shot)"),
    WriteOp("start_espresso", note="allow_remote_start"),
    WriteOp("start_steam", note="allow_remote_start"),
    WriteOp("start_hot_water", note="allow_remote_start"),
    WriteOp("start_flush", note="allow_remote_start"),
    WriteOp("set_shot_settings", note="allow_writes; ShotSettings limits"),
    WriteOp("set_refill_level", note="allow_writes; 0..70 mm"),
    WriteOp("write_setting", note="allow_writes; each register's range and step"),
    WriteOp("upload_profile", note="allow_writes; every frame value checked"),
    WriteOp("upload_profile_by_id", note="allow_writes; the stored profile checked as "
                                         "upload_profile; unknown id refused"),
    WriteOp("set_profile_by_id", note="pyDE1's name for upload_profile_by_id"),
    WriteOp("write_mmr", note="allow_writes; known writable registers only, each one's raw "
                              "range"),
    WriteOp("set_time", note="allow_writes; 0..2**64-1 s"),
    WriteOp("upload_firmware", note="allow_writes; header checked"),
    WriteOp("write_calibration", note="allow_writes + the DE1's key; 0.5..2 ratio, ±10 °C"),
    WriteOp("reset_calibration", note="allow_writes + the DE1's key"),
    WriteOp("mode wake", kind="cli"),
    WriteOp("mode sleep", kind="cli"),
    WriteOp("mode espresso", kind="cli"),
    WriteOp("mode steam", kind="cli"),
    WriteOp("mode hotwater", kind="cli"),
    WriteOp("mode flush", kind="cli"),
    WriteOp("mode clean", kind="cli"),
    WriteOp("mode descale", kind="cli"),
    WriteOp("mode transport", kind="cli"),
    WriteOp("mode skip", kind="cli"),
    WriteOp("profile upload", kind="cli"),
    WriteOp("profile select", kind="cli", note="an upload by id from --db"),
    WriteOp("mmr write", kind="cli"),
    WriteOp("time set", kind="cli"),
    WriteOp("firmware upload", kind="cli"),
    WriteOp("shot", kind="cli", note="wakes the DE1, starts espresso, tares the scale"),
]

#: The table the cross-family check reads: the DE1's rows and the Skale's (whose tests are in
#: test_scale_writes.py).
WRITE_OPERATIONS: List[WriteOp] = DE1_WRITE_OPERATIONS + SCALE_WRITE_OPERATIONS

#: Device-changing calls that are never refused (see the module docstring).
ALWAYS_ALLOWED: List[WriteOp] = [
    WriteOp("stop", note="a stop is never refused"),
    WriteOp("end_steam", note="ends steam; elsewhere it stops a flow"),
    WriteOp("stop_flow", note="what the sequencer's stop-at rules call"),
    WriteOp("cancel_firmware_upload", note="sends nothing: stops our own upload before its "
                                           "next chunk; the DE1 keeps its firmware"),
    WriteOp("mode stop", kind="cli"),
    WriteOp("mode end-steam", kind="cli"),
    WriteOp("mode norequest", kind="cli", note="changes nothing: the DE1 reports its state"),
]

LIBRARY = [op for op in DE1_WRITE_OPERATIONS if op.kind == "library"]
CLI = [op for op in DE1_WRITE_OPERATIONS if op.kind == "cli"]
#: Calls that block on the DE1 and so carry the "timed-out writes" sentence.
BLOCKING_WRITES = [op.name for op in LIBRARY + ALWAYS_ALLOWED
                   if op.kind == "library" and op.name != "cancel_firmware_upload"]

#: How to call each library operation with good values, and the opt-in it needs.
CALLS: Dict[str, Tuple[str, Callable[[DE1Client, ProfileLibrary], Any]]] = {
    "request_mode": ("allow_remote_start", lambda c, lib: c.request_mode("espresso")),
    "wake": ("allow_writes", lambda c, lib: c.wake()),
    "sleep": ("allow_writes", lambda c, lib: c.sleep()),
    "skip_to_next": ("allow_remote_start", lambda c, lib: c.skip_to_next()),
    "start_espresso": ("allow_remote_start", lambda c, lib: c.start_espresso()),
    "start_steam": ("allow_remote_start", lambda c, lib: c.start_steam()),
    "start_hot_water": ("allow_remote_start", lambda c, lib: c.start_hot_water()),
    "start_flush": ("allow_remote_start", lambda c, lib: c.start_flush()),
    "set_shot_settings": ("allow_writes", lambda c, lib: c.set_shot_settings(group_temp_c=93.0)),
    "set_refill_level": ("allow_writes", lambda c, lib: c.set_refill_level(8.0)),
    "write_setting": ("allow_writes", lambda c, lib: c.write_setting("fan_threshold", 45)),
    "upload_profile": ("allow_writes", lambda c, lib: c.upload_profile(PROFILE)),
    "upload_firmware": ("allow_writes", lambda c, lib: c.upload_firmware(make_test_image())),
    "write_calibration": ("allow_writes",
                          lambda c, lib: c.write_calibration("flow", 4.0, 4.2, write_key=CAL_KEY)),
    "reset_calibration": ("allow_writes",
                          lambda c, lib: c.reset_calibration("flow", write_key=CAL_KEY)),
    "upload_profile_by_id": ("allow_writes",
                             lambda c, lib: c.upload_profile_by_id(stored_id(lib), lib)),
    "set_profile_by_id": ("allow_writes",
                          lambda c, lib: c.set_profile_by_id(stored_id(lib), lib)),
    "write_mmr": ("allow_writes", lambda c, lib: c.write_mmr(0x803808, 45)),
    "set_time": ("allow_writes", lambda c, lib: c.set_time(1700000000)),
}


def bad_profile() -> dict:
    steps = [dict(PROFILE["steps"][0], temperature=120), PROFILE["steps"][1]]
    return dict(PROFILE, steps=steps)


def stored_id(lib: ProfileLibrary) -> str:
    """The id of the good profile the ``library`` fixture stored."""
    return lib.store(PROFILE).id


#: The id under which ``plant_bad_profile`` puts a 120 °C profile.
BAD_ID = "b" * 40


def plant_bad_profile(lib: ProfileLibrary) -> str:
    """Put a profile outside the DE1's limits into the library behind its back, as a pyDE1
    database or another program may hold one (``store`` itself refuses it)."""
    lib.list()  # the first use creates pyDE1's tables
    db = sqlite3.connect(lib.path)
    try:
        with db:
            db.execute("INSERT INTO profile (id, source, source_format, fingerprint, "
                       "date_added, title) VALUES (?, ?, 'JSONv2', '', 0, 'hot')",
                       (BAD_ID, json.dumps(bad_profile()).encode()))
    finally:
        db.close()
    return BAD_ID


#: A value outside the DE1's limits for each value-taking library operation, and the message
#: that must name the value, the limit and the unit.
OUT_OF_LIMITS: Dict[str, Tuple[Callable[[DE1Client], Any], str]] = {
    "set_shot_settings": (lambda c, lib: c.set_shot_settings(group_temp_c=120),
                          r"group_temp_c=120 °C is out of range: the limit is 0\.\.105 °C"),
    "set_refill_level": (lambda c, lib: c.set_refill_level(90),
                         r"start_fill_level_mm=90 mm is out of range: the limit is 0\.\.70 mm"),
    "write_setting": (lambda c, lib: c.write_setting("heater_phase1_flow", 12.5),
                      r"heater_phase1_flow=12\.5 mL/s is out of range: the limit is 0\.\.10 "
                      r"mL/s"),
    "upload_profile": (lambda c, lib: c.upload_profile(bad_profile()),
                       r"temperature=120 °C is out of range: the limit is 0\.\.105 °C"),
    "upload_firmware": (lambda c, lib: c.upload_firmware(make_test_image()[:-10]),
                        r"header says 1024 bytes after the 64-byte header but the file has "
                        r"1014"),
    "write_calibration": (lambda c, lib: c.write_calibration("pressure", 9.0, 20.0,
                                                        write_key=CAL_KEY),
                          r"measured=20\.0 bar is out of range: the limit is 0\.1\.\.16 bar"),
    "upload_profile_by_id": (lambda c, lib: c.upload_profile_by_id(plant_bad_profile(lib), lib),
                             r"temperature=120 °C is out of range: the limit is 0\.\.105 °C"),
    "set_profile_by_id": (lambda c, lib: c.set_profile_by_id(plant_bad_profile(lib), lib),
                          r"temperature=120 °C is out of range: the limit is 0\.\.105 °C"),
    "write_mmr": (lambda c, lib: c.write_mmr(0x803844, 1200),
                  r"raw value 1200 \(= 120 °C\) is out of range: the limit is 0\.\.990 "
                  r"\(0\.\.99 °C"),
    "set_time": (lambda c, lib: c.set_time(-1),
                 r"timestamp=-1 s is out of range: the limit is 0\.\.18446744073709551615 s"),
}


def test_the_table_names_every_write_method() -> None:
    """Every public DE1Client method that sends something to the machine is in a table."""
    listed = {op.name for op in LIBRARY + ALWAYS_ALLOWED if op.kind == "library"}
    readers = {name for name in dir(DE1Client) if name.startswith("read_")}
    not_device_changing = {"connect", "close", "subscribe", "events", "wait_for", "is_stale",
                           "post_later", "start_connect", "wait_connected"}
    public = {name for name in dir(DE1Client) if not name.startswith("_")
              and callable(getattr(DE1Client, name))}
    assert public - readers - not_device_changing == listed
    assert set(CALLS) == {op.name for op in LIBRARY}


@pytest.fixture
def rig() -> Iterator[DE1Rig]:
    r = DE1Rig(speed=SPEED, calibration_key=CAL_KEY).start()
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def library(tmp_path: Path) -> ProfileLibrary:
    lib = ProfileLibrary(str(tmp_path / "profiles.db"))
    lib.store(PROFILE)
    return lib


def sim_writes(rig: DE1Rig) -> List[Tuple[str, bytes]]:
    return rig.run(lambda: list(rig.de1.writes))


@pytest.mark.parametrize("op", LIBRARY, ids=lambda op: op.name)
def test_library_write_refused_without_its_opt_in(rig: DE1Rig, library: ProfileLibrary,
                                                  op: WriteOp) -> None:
    opt_in, call = CALLS[op.name]
    other = {"allow_writes": "allow_remote_start", "allow_remote_start": "allow_writes"}[opt_in]
    for options in ({}, {other: True}):  # the other permission does not stand in for it
        with DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5.0,
                       **options) as de1:
            before = sim_writes(rig)
            with pytest.raises(WriteNotAllowedError, match=f"{opt_in}=True") as caught:
                call(de1, library)
            assert (caught.value.device, caught.value.endpoint) == ("de1", rig.de1.address)
            assert sim_writes(rig) == before, "something reached the DE1"


@pytest.mark.parametrize("name", sorted(OUT_OF_LIMITS))
def test_library_value_outside_the_limits_refused_before_sending(
        rig: DE1Rig, library: ProfileLibrary, name: str) -> None:
    call, message = OUT_OF_LIMITS[name]
    with DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5.0,
                   allow_writes=True, allow_remote_start=True) as de1:
        before = sim_writes(rig)
        with pytest.raises(ConfigurationError, match=message):
            call(de1, library)
        assert sim_writes(rig) == before, "something reached the DE1"
    assert library.selected is None  # a refused upload selects nothing either


def test_an_unknown_profile_id_is_refused_before_sending(rig: DE1Rig,
                                                         library: ProfileLibrary) -> None:
    with DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5.0,
                   allow_writes=True) as de1:
        before = sim_writes(rig)
        with pytest.raises(ProfileNotFoundError, match="no profile with id 'f00d'"):
            de1.upload_profile_by_id("f00d", library)
        assert sim_writes(rig) == before, "something reached the DE1"


def test_the_new_writes_go_through_when_allowed(rig: DE1Rig, library: ProfileLibrary) -> None:
    """The good-value calls the refusal tests use are the ones that work once opted in."""
    with DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5.0,
                   allow_writes=True) as de1:
        assert de1.write_mmr(0x803808, 45) == 45
        assert rig.run(lambda: rig.de1.registers[0x803808]) == 45
        assert de1.set_time(1700000000) == 1700000000 == de1.read_time()
        program = de1.upload_profile_by_id(stored_id(library), library)
        assert program.profile_id == stored_id(library) == library.selected
        assert any(uuid == codec.HEADER_WRITE for uuid, _ in sim_writes(rig))


@pytest.mark.parametrize("name", BLOCKING_WRITES)
def test_every_write_method_says_a_timed_out_write_may_still_apply(name: str) -> None:
    doc = " ".join((getattr(DE1Client, name).__doc__ or "").split())
    assert NEVER_RETRIED in doc, f"DE1Client.{name}'s docstring lacks: {NEVER_RETRIED}"


def test_stops_are_always_allowed(rig: DE1Rig) -> None:
    """Hot water started by one client (45 s), stopped by another opened for nothing."""
    with DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5.0,
                   allow_writes=True, allow_remote_start=True) as de1:
        de1.wake()
        de1.start_hot_water()
    with DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5.0) as read_only:
        assert read_only.state is S.HOT_WATER
        assert read_only.stop().state is S.IDLE  # a client opened for nothing may stop
        assert read_only.end_steam().state is S.IDLE and read_only.stop_flow() is False
        assert read_only.request_mode(Mode.NO_REQUEST).state is S.IDLE


# ---------------------------------------------------------------------------- command line

@pytest.fixture
def files(tmp_path: Path) -> Dict[str, str]:
    good = tmp_path / "profile.json"
    good.write_text(json.dumps(PROFILE))
    bad = tmp_path / "hot.json"
    bad.write_text(json.dumps(bad_profile()))
    firmware = tmp_path / "bootfwupdate.dat"
    firmware.write_bytes(make_test_image())
    truncated = tmp_path / "short.dat"
    truncated.write_bytes(make_test_image()[:-10])
    library = ProfileLibrary(str(tmp_path / "library.db"))
    return {"profile": str(good), "bad_profile": str(bad), "firmware": str(firmware),
            "bad_firmware": str(truncated), "db": library.path,
            "profile_id": library.store(PROFILE).id, "bad_id": plant_bad_profile(library)}


def cli_args(op: WriteOp, address: str, files: Dict[str, str]) -> List[str]:
    words = op.name.split()
    extra = {"profile upload": [files["profile"]], "firmware upload": [files["firmware"]],
             "shot": ["--stop-at-time", "30"],
             "profile select": [files["profile_id"], "--db", files["db"]],
             "mmr write": ["0x803808", "45"],
             "time set": ["--timestamp", "1700000000"]}.get(op.name, [])
    return ["de1", *words, *extra, "--address", address, "--send-delay", "0.002"]


def untouched(env: RigOnPath) -> bool:
    """The simulated radio saw no request at all: nothing connected, nothing was written."""
    return env.rig.run(lambda: env.rig.host.requests == 0 and not env.de1.writes)


@pytest.mark.parametrize("op", CLI, ids=lambda op: op.name)
def test_cli_write_refused_without_allow_writes(rig_on_path: RigOnPath, op: WriteOp,
                                                files: Dict[str, str], capsys: Any) -> None:
    code = main(cli_args(op, rig_on_path.de1.address, files))
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--allow-writes" in lines[0], err
    assert "Traceback" not in err and out == ""
    assert untouched(rig_on_path)


CLI_OUT_OF_LIMITS = {
    "shot": (["--stop-at-weight", "5000"],
             r"stop_at_weight=5000\.0 g is out of range: the limit is 0\.1\.\.2000 g"),
    "profile upload": (["bad_profile"],
                       r"temperature=120 °C is out of range: the limit is 0\.\.105 °C"),
    "firmware upload": (["bad_firmware"],
                        r"header says 1024 bytes after the 64-byte header but the file has "
                        r"1014"),
    "profile select": (["bad_id", "--db", "db"],
                       r"temperature=120 °C is out of range: the limit is 0\.\.105 °C"),
    "mmr write": (["0x803844", "1200"],
                  r"raw value 1200 \(= 120 °C\) is out of range: the limit is 0\.\.990 "
                  r"\(0\.\.99 °C"),
    "time set": (["--timestamp", "-1"],
                 r"timestamp=-1 s is out of range: the limit is 0\.\.18446744073709551615 s"),
}

#: Rows whose bad value is only found after connecting (the connect's own reads and set-up),
#: still before any write of theirs reaches the DE1: ``de1 profile select`` looks the id up
#: before connecting but compiles the stored profile only inside ``upload_profile_by_id``;
#: ``de1 time set`` leaves the timestamp to ``set_time``. Once ``cli/de1.py`` checks them
#: before connecting (``library.program(args.id)``, ``codec.encode_set_time(args.timestamp)``),
#: drop them from here so the stricter ``untouched`` check applies.
#: CLI rows whose check needs the connected device (none today: each is checked before)
CHECKED_AFTER_CONNECTING: Dict[str, Tuple[str, ...]] = {}


@pytest.mark.parametrize("name", sorted(CLI_OUT_OF_LIMITS))
def test_cli_value_outside_the_limits_refused_before_sending(
        rig_on_path: RigOnPath, name: str, files: Dict[str, str], capsys: Any) -> None:
    extra, message = CLI_OUT_OF_LIMITS[name]
    extra = [files.get(word, word) for word in extra]
    code = main(["de1", *name.split(), *extra, "--address", rig_on_path.de1.address,
                 "--allow-writes", "--send-delay", "0.002"])
    _, err = capsys.readouterr()
    assert code == 2 and re.search(message, err), err
    assert len(err.strip().splitlines()) == 1
    if name in CHECKED_AFTER_CONNECTING:
        targets = CHECKED_AFTER_CONNECTING[name]
        sent = rig_on_path.rig.run(lambda: [uuid for uuid, _ in rig_on_path.de1.writes])
        assert not set(sent) & set(targets), "part of the write reached the DE1"
    else:
        assert untouched(rig_on_path)


def test_cli_unknown_profile_id_refused_before_connecting(
        rig_on_path: RigOnPath, files: Dict[str, str], capsys: Any) -> None:
    code = main(["de1", "profile", "select", "f00d", "--db", files["db"], "--address",
                 rig_on_path.de1.address, "--allow-writes", "--send-delay", "0.002"])
    _, err = capsys.readouterr()
    assert code == 2 and "no profile with id 'f00d'" in err, err
    assert untouched(rig_on_path)


def test_cli_commands_that_touch_no_de1_need_no_allow_writes(
        rig_on_path: RigOnPath, files: Dict[str, str], capsys: Any) -> None:
    """The library commands excused from the table really send nothing: they work without
    ``--allow-writes`` and the simulated radio sees no request."""
    outputs = []
    for words in (["profile", "store", files["profile"]], ["profile", "list"]):
        code = main(["de1", *words, "--db", files["db"], "--address",
                     rig_on_path.de1.address, "--format", "json"])
        out, err = capsys.readouterr()
        assert code == 0, (words, err)
        outputs.append(json.loads(out))
    stored, listed = outputs
    assert stored["id"] in {row["id"] for row in listed}  # the file's id, as pyDE1 hashes it
    assert untouched(rig_on_path)
    assert {"de1 profile store", "de1 profile list"} <= set(NOT_DEVICE_CHANGING_CLI)


def test_cli_stops_need_no_allow_writes(rig_on_path: RigOnPath, capsys: Any) -> None:
    for op in (op for op in ALWAYS_ALLOWED if op.kind == "cli"):
        code = main(["de1", *op.name.split(), "--address", rig_on_path.de1.address,
                     "--send-delay", "0.002", "--format", "json"])
        out, err = capsys.readouterr()
        assert code == 0 and json.loads(out)["state"] == "SLEEP", (op.name, err)


# ---------------------------------------------------------------------------- never retried

@pytest.fixture
def harness() -> Iterator[DE1Harness]:
    h = DE1Harness()
    h.start()
    try:
        yield h
    finally:
        h.stop()


def test_a_timed_out_write_is_never_retried(harness: DE1Harness) -> None:
    """Through pygatt and the fake gatttool: the DE1 answers 2 s late (twice the 1 s timeout).
    The write times out, yet the DE1 applies it; once it answers again (the client has reset
    its link meanwhile) it has received exactly one write. Then the DE1 answers nothing: the
    write it never got is not sent again after the reconnect either."""
    client = harness.make_client(timeout=1.0, reconnect=FAST)
    try:
        client.connect()
        harness.hold_replies(2.0)
        with pytest.raises(DeviceTimeoutError):
            harness.write(client, 1.0)
        assert harness.writes_received() == 1
        # everything the DE1 held back has gone out once this marker fires
        flushed = threading.Event()
        harness.on_sim(lambda: harness.env.rig.host.call_later(2.1, flushed.set))
        harness.hold_replies(0.0)
        assert flushed.wait(5.0)
        harness.read(client, 5.0)  # answered (after the link reset)
        assert harness.writes_received() == 1, "the timed-out write was sent again"
        assert harness.on_sim(lambda: harness.sim_de1.registers[0x803808]) == 51  # applied
        harness.silence(True)
        with pytest.raises(DeviceTimeoutError):
            harness.write(client, 1.0)
        harness.silence(False)
        harness.read(client, 5.0)
        client.wait_for(lambda c: c.connected and not c.stale, timeout=5.0)
        harness.read(client, 5.0)
        assert harness.writes_received() == 1, "a write the DE1 never got was sent later"
    finally:
        client.close()


def test_the_mmr_retry_never_resends_a_write(rig: DE1Rig) -> None:
    """The initialisation asks once more for MMR registers whose reply was lost (a read
    request). It must never send a register write again: neither the APP_FEATURE_FLAGS write
    of the initialisation nor a user's write whose read-back reply was lost."""
    def mmr_writes(address: int) -> int:
        return sum(1 for uuid, data in sim_writes(rig) if uuid == codec.WRITE_TO_MMR
                   and int.from_bytes(data[1:4], "big") == address)

    def mmr_reads() -> int:
        return sum(1 for uuid, _ in sim_writes(rig) if uuid == codec.READ_FROM_MMR)

    rig.run(lambda: rig.de1.lose_mmr_replies.update({0x800010, 0x803808}))
    de1 = DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=1.0,
                    allow_writes=True, init_timeout=2.0)  # the retry comes after 0.5 s
    try:
        de1.connect()
        assert rig.run(lambda: set(rig.de1.lose_mmr_replies)) == set()  # both were lost
        assert mmr_reads() > 3  # the build and two bulk reads, then the retries
        assert mmr_writes(0x803858) == 1  # APP_FEATURE_FLAGS, once
        rig.run(lambda: rig.de1.lose_mmr_replies.add(0x803808))  # the read-back gets lost
        with pytest.raises(DeviceTimeoutError):
            de1.write_setting("fan_threshold", 42)
        passed = threading.Event()  # well after any retry timer that could still be armed
        de1._session.call_soon_threadsafe(
            lambda: de1._session.loop.call_later(1.0, passed.set))
        assert passed.wait(5.0)
        assert de1.read_setting("fan_threshold") == 42  # applied, once
        assert mmr_writes(0x803808) == 1 and mmr_writes(0x803858) == 1
    finally:
        de1.close()


# ---------------------------------------------------------------------------- the sequencer

def test_the_sequencer_refuses_what_its_clients_were_not_opened_for(rig: DE1Rig) -> None:
    de1 = DE1Client(rig.de1.address, transport=sim_transport(rig), timeout=5.0)
    scale = SkaleClient(rig.skale.address, transport=sim_transport(rig), time_scale=SPEED)
    try:
        de1.connect()
        scale.connect()
        with pytest.raises(WriteNotAllowedError, match="auto-tare .*allow_writes=True"):
            ShotSequencer(de1, scale, stop_at_weight=36)
        with pytest.raises(WriteNotAllowedError, match="allow_remote_start=True"):
            ShotSequencer(de1, None, move_on_weight=[3.0])
        # stop-at rules need no permission: stopping is always allowed
        ShotSequencer(de1, scale, stop_at_weight=36, auto_tare=False).start().close()
        wait_until(lambda: scale.weight is not None, message="a weight")
    finally:
        scale.close()
        de1.close()
