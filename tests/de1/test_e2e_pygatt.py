"""The whole stack through unmodified pygatt: GATTToolBackend spawns the fake ``gatttool``
(a real process on a pty, first on PATH), which reaches the simulated DE1 and Skale over
127.0.0.1. Connect and init, modes, a shot with stop-at-weight, profile and firmware upload,
remote disconnect and reconnect, scan."""

from __future__ import annotations

from typing import Any

from pyburnerkit import ConnectionState, ConnectionStateChanged, Reconnect
from pyburnerkit.ble import scan
from pyburnerkit.de1 import codec
from pyburnerkit.de1.client import DE1Client
from pyburnerkit.de1.firmware import make_test_image
from pyburnerkit.de1.models import MachineState as S, ShotSampleEvent
from pyburnerkit.de1.sequencer import ShotSequencer
from pyburnerkit.scale.client import SkaleClient

from ..ble.simrig import SEND_DELAY, SPEED, RigOnPath
from ..helpers import Recorder
from .test_profile_firmware import PROFILE

FAST = Reconnect(min_delay=0.05, max_delay=0.5)


def de1_client(env: RigOnPath, **kw: Any) -> DE1Client:
    kw.setdefault("send_delay", SEND_DELAY)
    kw.setdefault("reconnect", FAST)
    return DE1Client(env.de1.address, allow_writes=True, allow_remote_start=True, **kw)


def test_connect_init_and_modes_through_pygatt(rig_on_path: RigOnPath) -> None:
    env = rig_on_path
    with de1_client(env).connect() as de1:
        assert de1.info.firmware_build == 1333 and de1.state is S.SLEEP
        # every characteristic subscribed, request/response ones first, ShotSample last
        order = [u for u, mode in env.rig.run(lambda: list(env.de1.cccd_log)) if mode == 1]
        assert order == list(codec.SUBSCRIBE_ORDER)
        assert de1.wake().state is S.IDLE
        assert de1.start_espresso().state is S.ESPRESSO
        de1.wait_for(lambda c: c.volume[1] > 0.5, timeout=30)
        assert de1.stop().state in (S.ESPRESSO, S.IDLE)
        de1.wait_for(lambda c: c.state is S.IDLE, timeout=10)
        assert de1.write_setting("steam_flow", 1.2) == 1.2
        assert de1.set_shot_settings(hot_water_temp_c=80).hot_water_temp_c == 80


def test_pygatt_default_send_delay_also_works(rig_on_path: RigOnPath) -> None:
    with de1_client(rig_on_path, send_delay=None).connect() as de1:
        assert de1.read_state().state is S.SLEEP


def test_shot_with_stop_at_weight_both_devices_through_pygatt(rig_on_path: RigOnPath) -> None:
    env = rig_on_path
    de1 = de1_client(env)
    scale = SkaleClient(env.skale.address, send_delay=SEND_DELAY, time_scale=SPEED,
                        allow_writes=True)
    try:
        de1.connect()
        scale.connect()
        assert scale.info.model == "SkaleII"
        de1.wake()
        with ShotSequencer(de1, scale, stop_at_weight=32, time_scale=SPEED) as seq:
            de1.start_espresso()
            record = seq.wait_complete(timeout=90)
        assert record.stop_reason == "weight"
        assert abs(record.final_weight_g - 32) < 2.0, record.final_weight_g
    finally:
        de1.close()
        scale.close()


def test_profile_and_firmware_upload_through_pygatt(rig_on_path: RigOnPath) -> None:
    env = rig_on_path
    with de1_client(env).connect() as de1:
        program = de1.upload_profile(PROFILE)
        assert env.rig.run(lambda: env.de1.profiles_accepted) == 1
        assert env.rig.run(lambda: len(env.de1.frames)) == 2
        assert de1.profile.fingerprint == program.fingerprint
        image = make_test_image(version=1401, body_bytes=512)
        assert de1.upload_firmware(image, timeout=60) == 1401
        assert env.rig.run(lambda: bytes(env.de1.fw_image)) == image


def test_remote_disconnect_then_reconnect_and_resubscribe(rig_on_path: RigOnPath) -> None:
    env = rig_on_path
    events = Recorder()
    with de1_client(env, on_event=events).connect() as de1:
        env.rig.host.drop_all()  # the DE1 ends the link: gatttool prints the GLib warning
        events.wait_for(lambda e: isinstance(e, ConnectionStateChanged)
                        and e.state is ConnectionState.RECONNECTING)
        de1.wait_for(lambda c: c.connected and not c.stale, timeout=20)
        count = len(events.events)
        fresh = events.wait_for(lambda e: isinstance(e, ShotSampleEvent)
                                and events.events.index(e) > count)
        assert fresh.sample is not None
        assert de1.wake().state is S.IDLE


def test_scan_by_name_through_the_fake_hcitool(rig_on_path: RigOnPath) -> None:
    found = scan(1.0, name="DE1")
    assert found == [{"address": rig_on_path.de1.address, "name": "DE1"}]
    skale = scan(1.0, name="Skale")
    assert [d["address"] for d in skale] == [rig_on_path.skale.address]
    assert scan(1.0, address=rig_on_path.skale.address)[0]["name"] == "Skale"


def test_a_dropped_link_names_the_device_and_endpoint(rig_on_path: RigOnPath) -> None:
    """Regression: the error a call in flight got when the BLE link dropped (the transport's
    ``LinkDown``) named neither the device nor its endpoint, unlike every other error."""
    from pyburnerkit.errors import ConnectionLostError

    from ..helpers import CallInThread, wait_until
    env = rig_on_path
    address = env.de1.address
    events = Recorder()

    def fan_writes() -> int:
        return sum(1 for uuid, data in list(env.de1.writes)
                   if uuid == codec.WRITE_TO_MMR and data[1:4] == b"\x80\x38\x08")

    with de1_client(env, on_event=events, timeout=20).connect() as de1:
        env.rig.host.delay_responses(30.0)  # the write reaches the DE1, its ack is held
        call = CallInThread(lambda: de1.write_setting("fan_threshold", 40))
        wait_until(lambda: fan_writes() == 1, message="the write reaching the DE1")
        env.rig.host.delay_responses(0.0)
        env.rig.host.drop_all()
        call.join(10.0)
        error = call.error
        assert isinstance(error, ConnectionLostError), error
        assert (error.device, error.endpoint) == ("de1", address)
        assert f"[de1 {address}]" in str(error)
        dropped = events.wait_for(lambda e: isinstance(e, ConnectionStateChanged)
                                  and e.state is ConnectionState.RECONNECTING)
        assert (dropped.error.device, dropped.error.endpoint) == ("de1", address)
