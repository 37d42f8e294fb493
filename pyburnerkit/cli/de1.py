"""``pyburnerkit de1 ...`` and ``pyburnerkit sim de1`` (a simulated DE1 and Skale II)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

from ..errors import ConfigurationError, DeviceConnectionError, WriteNotAllowedError
from .common import (Bound, RecordStream, UsageError, add_bound_options, add_endpoint_option,
                     add_format_option, add_option_everywhere, add_writes_option, emit,
                     endpoint)


#: What ``--allow-writes`` unlocks, per device (shown in --help).
WRITES_HELP = {
    "DE1": "allow commands that change the machine: modes other than stop, end-steam and "
           "norequest (wake, sleep, starting flows, skip), profile and firmware upload, shot",
    "scale": "allow commands that change the scale (tare)",
}

#: Modes that never need --allow-writes: a stop is never refused; norequest changes nothing.
SAFE_MODES = ("Stop", "EndSteam", "NoRequest")


def require_writes(args: argparse.Namespace, what: str, device: str = "DE1") -> None:
    """Refuse a device-changing command without ``--allow-writes`` before anything connects
    (``main`` prints the one line and exits 2)."""
    if not getattr(args, "allow_writes", False):
        raise WriteNotAllowedError(f"{what} changes the {device}: add --allow-writes to allow "
                                   f"it (nothing was sent)",
                                   device="de1" if device == "DE1" else device,
                                   endpoint=getattr(args, "address", None))


def add_ble_options(parsers: List[argparse.ArgumentParser], env_name: str, what: str) -> None:
    add_writes_option(parsers, help=WRITES_HELP.get(what, "allow commands that change the "
                                                          "device"))
    family = "scale" if what == "scale" else "de1"
    add_endpoint_option(parsers, family, "--address", "--host", dest="address",
                        what=f"the {what}'s Bluetooth address, or sim:// for a simulated "
                             f"{what} in this process", fallback=(env_name,),
                        otherwise="scan by name")
    add_option_everywhere(parsers, "--backend", choices=["gatttool", "bgapi"],
                          default="gatttool", help="pygatt backend (default gatttool)")
    add_option_everywhere(parsers, "--hci", default="hci0", help="adapter for gatttool")
    add_option_everywhere(parsers, "--serial-port", default=None,
                          help="BLED112 serial port (bgapi backend)")
    add_option_everywhere(parsers, "--send-delay", type=float, default=None,
                          help="gatttool backend: pause before each command in seconds "
                               "(pygatt's default is 0.05)")
    add_option_everywhere(parsers, "--timeout", type=float, default=10.0,
                          help="seconds to wait for the device (default 10)")
    add_option_everywhere(parsers, "--time-scale", type=float, default=1.0,
                          help="simulated seconds per real second (only against a sped-up "
                               "simulator)")
    add_format_option(parsers)


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "de1", help="Decent DE1 espresso machine (BLE via pygatt)",
        description="Read, control and program a Decent DE1 over BLE.")
    sub = group.add_subparsers(dest="command", metavar="SUBCOMMAND")
    sub.required = True
    scan = sub.add_parser("scan", help="list DE1 machines in range")
    scan.add_argument("--seconds", type=float, default=3.0, help="scan time (default 3)")
    status = sub.add_parser("status", help="state, info, settings and water level once")
    watch = sub.add_parser("watch", help="print state changes and shot samples")
    add_bound_options([watch], what="records")
    mode = sub.add_parser("mode", help="request a mode (sleep, wake, stop, end-steam, espresso, "
                                       "steam, hotwater, flush, clean, descale, transport, "
                                       "skip, norequest); all but stop, end-steam and "
                                       "norequest need --allow-writes")
    mode.add_argument("mode")
    profile = sub.add_parser("profile", help="profile commands")
    psub = profile.add_subparsers(dest="action", metavar="ACTION")
    psub.required = True
    pupload = psub.add_parser("upload", help="validate and upload a JSON v2 profile (needs "
                                             "--allow-writes)")
    pupload.add_argument("file")
    pupload.add_argument("--db", default=None, metavar="DB",
                         help="also store it in this profile library and select it there "
                              "(SQLite, e.g. pyburnerkit.db)")
    pstore = psub.add_parser("store", help="validate a JSON v2 profile and store it in the "
                                           "profile library by its id (no DE1 needed)")
    pstore.add_argument("file")
    plist = psub.add_parser("list", help="the profiles in the library (no DE1 needed)")
    pselect = psub.add_parser("select", help="upload a stored profile by its id and select "
                                             "it (needs --allow-writes)")
    pselect.add_argument("id")
    for parser in (pstore, plist, pselect):
        parser.add_argument("--db", default="pyburnerkit.db", metavar="DB",
                            help="the profile library (SQLite; default: pyburnerkit.db, the "
                                 "recorder's database)")
    mmr = sub.add_parser("mmr", help="raw memory-mapped registers, for experts")
    msub = mmr.add_subparsers(dest="action", metavar="ACTION")
    msub.required = True
    mread = msub.add_parser("read", help="read raw 32-bit registers")
    mread.add_argument("register", metavar="ADDRESS",
                       help="0x803808 or a register name (fan_threshold)")
    mread.add_argument("words", nargs="?", type=int, default=1, help="how many (default 1)")
    mwrite = msub.add_parser("write", help="write one raw register within its known limits "
                                           "(needs --allow-writes)")
    mwrite.add_argument("register", metavar="ADDRESS",
                        help="0x803808 or a register name (fan_threshold)")
    mwrite.add_argument("value", help="the raw value (e.g. 900 for 90.0 °C in a /10 register)")
    clock = sub.add_parser("time", help="SetTime: read or set the DE1's clock")
    csub = clock.add_subparsers(dest="action", metavar="ACTION")
    csub.required = True
    cread = csub.add_parser("read", help="read SetTime")
    cset = csub.add_parser("set", help="write SetTime (needs --allow-writes)")
    cset.add_argument("--timestamp", type=int, default=None,
                      help="whole seconds (default: now, Unix time)")
    viz = sub.add_parser("visualizer", help="upload a shot file to Visualizer")
    vsub = viz.add_subparsers(dest="action", metavar="ACTION")
    vsub.required = True
    vupload = vsub.add_parser(
        "upload", help="POST a shot (the JSON of 'de1 shot --visualizer', or a .shot file); "
                       "credentials from $PYBURNERKIT_VISUALIZER_USERNAME/_PASSWORD or --config")
    vupload.add_argument("file")
    vupload.add_argument("--url", default=None,
                         help="upload endpoint (default: $PYBURNERKIT_VISUALIZER_URL, else "
                              "https://visualizer.coffee/api/shots/upload)")
    vupload.add_argument("--config", default=None, metavar="TOML",
                         help="a TOML file with a [visualizer] table (url, username, password)")
    firmware = sub.add_parser("firmware", help="firmware commands")
    fsub = firmware.add_subparsers(dest="action", metavar="ACTION")
    fsub.required = True
    fupload = fsub.add_parser("upload", help="upload a firmware file (bootfwupdate.dat; needs "
                                             "--allow-writes)")
    fupload.add_argument("file")
    shot = sub.add_parser("shot", help="pull a shot and stop it at a weight, volume or time "
                                       "(needs --allow-writes)")
    shot.add_argument("--stop-at-weight", type=float, default=None, metavar="G")
    shot.add_argument("--stop-at-volume", type=float, default=None, metavar="ML")
    shot.add_argument("--stop-at-time", type=float, default=None, metavar="S")
    shot.add_argument("--scale", default=os.environ.get("PYBURNERKIT_SCALE_ADDRESS"),
                      help="Skale address for stop-at-weight (default: "
                           "$PYBURNERKIT_SCALE_ADDRESS, else scan)")
    shot.add_argument("--visualizer", default=None, metavar="FILE",
                      help="write the shot as Visualizer JSON to FILE")
    from .top import add_top_parser
    top = add_top_parser(sub, "de1")
    parsers = [group, scan, status, watch, mode, profile, pupload, firmware, fupload, shot,
               pstore, plist, pselect, mmr, mread, mwrite, clock, cread, cset, viz, vupload,
               top]
    add_ble_options(parsers, "PYBURNERKIT_DE1_ADDRESS", "DE1")
    for parser, handler in ((scan, _scan), (status, _status), (watch, _watch), (mode, _mode),
                            (pupload, _profile_upload), (fupload, _firmware_upload),
                            (shot, _shot), (pstore, _profile_store), (plist, _profile_list),
                            (pselect, _profile_select), (mread, _mmr_read),
                            (mwrite, _mmr_write), (cread, _time_read), (cset, _time_set),
                            (vupload, _visualizer_upload), (top, _top)):
        parser.set_defaults(handler=handler)


def register_sim(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "de1", help="simulated DE1 + Skale II behind a fake gatttool/hcitool",
        description="Runs a simulated DE1 and Skale II and writes fake gatttool and hcitool "
                    "programs into a directory. Put it first on PATH and any pygatt program "
                    "reaches the simulated devices. Prints PATH=, DE1= and SKALE= first.")
    parser.add_argument("--dir", default=None, help="where to write the fake tools "
                                                    "(default: a new temp directory)")
    parser.add_argument("--port", type=int, default=0, help="simulator port (0 = free)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per real second")
    parser.add_argument("--firmware-build", type=int, default=1333)
    parser.add_argument("--ghc-active", action="store_true",
                        help="simulate an active group head controller")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--bgapi", action="store_true",
                        help="also emulate a BLED112 dongle on a pseudo-terminal and print "
                             "BGAPI=<port> after the three lines (for backend='bgapi')")
    parser.set_defaults(handler=_sim)


# ---------------------------------------------------------------------------- helpers


def find_address(args: argparse.Namespace, name: str, address: Optional[str]) -> str:
    if address:
        return address
    from ..ble import scan
    found = scan(min(args.timeout, 3.0), name=name, backend=args.backend, hci_device=args.hci,
                 serial_port=args.serial_port)
    if not found:
        raise DeviceConnectionError(f"no device named {name}* found by scanning; give --address")
    return str(found[0]["address"])


def de1_client(args: argparse.Namespace, **kw: Any) -> Any:
    from ..de1.client import DE1Client
    address = find_address(args, "DE1", endpoint(args, "address"))
    return DE1Client(address, backend=args.backend, hci_device=args.hci,
                     serial_port=args.serial_port, send_delay=args.send_delay,
                     timeout=args.timeout,
                     connect_timeout=max(args.timeout, 5.0), **kw)


class UploadDisplay:
    """Upload progress events (:class:`~pyburnerkit.de1.models.UploadProgress`, delivered on
    the client's events thread) shown by a :class:`~pyburnerkit.cli.progress.Progress`: a
    tqdm bar on a terminal, lines on stderr otherwise; the last line says how it ended."""

    def __init__(self, label: str, total: Optional[int] = None, unit: str = "B") -> None:
        from .progress import Progress
        self.progress = Progress(label, total, unit=unit)

    def __call__(self, event: Any) -> None:
        # a failure is reported with done=0: keep showing where it stopped
        done = self.progress.done if event.phase == "failed" else event.done
        self.progress.update(done, total=event.total or None, phase=event.phase)

    def __enter__(self) -> "UploadDisplay":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.progress.__exit__(*exc_info)


def status_record(client: Any) -> Dict[str, Any]:
    info = client.info
    return {"address": client.address, "state": client.state, "substate": client.substate,
            "substate_text": client.substate.text if client.substate is not None else None,
            "firmware_build": info.firmware_build if info else None,
            "model": info.machine_model if info else None,
            "ghc_active": info.ghc_active if info else None,
            "water_level_mm": client.water_levels.level_mm if client.water_levels else None,
            "refill_level_mm": (client.water_levels.start_fill_level_mm
                                if client.water_levels else None),
            "shot_settings": client.shot_settings,
            "settings": {k: v for k, v in client.registers.items()
                         if k in ("fan_threshold", "tank_temperature", "steam_flow",
                                  "flush_flow", "flush_temperature", "flush_timeout",
                                  "usb_outlet", "user_present")}}


# ---------------------------------------------------------------------------- handlers


def _scan(args: argparse.Namespace) -> int:
    from ..ble import scan
    if not args.seconds > 0:
        raise UsageError("--seconds must be > 0")
    found = scan(args.seconds, name="DE1", backend=args.backend, hci_device=args.hci,
                 serial_port=args.serial_port)
    emit(found, args.format)
    return 0


def _status(args: argparse.Namespace) -> int:
    with de1_client(args).connect() as client:
        emit(status_record(client), args.format)
    return 0


def _watch(args: argparse.Namespace) -> int:
    from ..de1.models import ShotSampleEvent, StateChanged, WaterLevelsChanged
    bound = Bound.from_args(args)
    stream = RecordStream(args.format)
    with de1_client(args).connect() as client:
        if args.format != "csv":  # csv is one table of the records below
            emit(status_record(client), args.format)
        for event in bound.iterate(client.events(args.duration, StateChanged,
                                                 ShotSampleEvent, WaterLevelsChanged)):
            if isinstance(event, StateChanged):
                record: Dict[str, Any] = {"event": "state", "state": event.state,
                                          "substate": event.substate}
            elif isinstance(event, ShotSampleEvent):
                s = event.sample
                record = {"event": "sample", "pressure_bar": round(s.group_pressure_bar, 2),
                          "flow_ml_s": round(s.group_flow_ml_s, 2),
                          "head_temp_c": round(s.head_temp_c, 1), "frame": s.frame_number,
                          "volume_ml": round(event.volume_total_ml, 1)}
            else:
                record = {"event": "water", "level_mm": round(event.levels.level_mm, 1)}
            stream.write(record, event.timestamp)
            bound.tick()
    return 0


def _top(args: argparse.Namespace) -> int:
    from .top import run_top
    return run_top(args, "de1", lambda: de1_client(args).connect(),
                   endpoint(args, "address") or "DE1")


def _mode(args: argparse.Namespace) -> int:
    from ..de1.models import Mode
    aliases = {"hotwater": "HotWater", "hot_water": "HotWater", "flush": "HotWaterRinse",
               "skip": "SkipToNext", "skiptonext": "SkipToNext"}
    name = aliases.get(args.mode.lower(), args.mode)
    try:
        mode = Mode.parse(name)
    except ValueError:
        raise UsageError(f"unknown mode {args.mode!r}; known: "
                         f"{', '.join(m.value for m in Mode)}") from None
    if mode.value not in SAFE_MODES:
        require_writes(args, f"mode {mode.value}")
    with de1_client(args, allow_writes=args.allow_writes,
                    allow_remote_start=args.allow_writes).connect() as client:
        info = client.request_mode(mode)
        emit({"state": info.state, "substate": info.substate}, args.format)
    return 0


def _profile_upload(args: argparse.Namespace) -> int:
    from ..de1.models import UploadProgress
    from ..de1.profile import load
    require_writes(args, "profile upload")
    program = load(args.file)  # validate before connecting
    library = None
    if args.db:
        from ..de1.library import ProfileLibrary
        library = ProfileLibrary(args.db)
    with de1_client(args, allow_writes=True).connect() as client:
        with UploadDisplay("profile upload", None, unit="frames") as display, \
                client.subscribe(display, UploadProgress):
            client.upload_profile(program, library=library)
        emit({"title": program.title, "frames": len(program.frames),
              "fingerprint": program.fingerprint, "profile_id": program.profile_id},
             args.format)
    return 0


def _library_record(entry: Any) -> Dict[str, Any]:
    return {"id": entry.id, "title": entry.title, "author": entry.author,
            "beverage_type": entry.beverage_type, "fingerprint": entry.fingerprint,
            "date_added": time.strftime("%Y-%m-%dT%H:%M:%S",
                                        time.localtime(entry.date_added))}


def _profile_store(args: argparse.Namespace) -> int:
    from ..de1.library import ProfileLibrary
    entry = ProfileLibrary(args.db).store(args.file)
    emit(_library_record(entry), args.format)
    return 0


def _profile_list(args: argparse.Namespace) -> int:
    from ..de1.library import ProfileLibrary
    library = ProfileLibrary(args.db)
    selected = library.selected
    emit([dict(_library_record(e), selected=e.id == selected) for e in library.list()],
         args.format)
    return 0


def _profile_select(args: argparse.Namespace) -> int:
    from ..de1.library import ProfileLibrary
    require_writes(args, "profile select (an upload)")
    library = ProfileLibrary(args.db)
    # an unknown id, or a stored profile outside the DE1's limits, fails before connecting
    library.program(args.id)
    with de1_client(args, allow_writes=True).connect() as client:
        program = client.upload_profile_by_id(args.id, library)
    emit({"id": program.profile_id, "title": program.title,
          "fingerprint": program.fingerprint, "selected": True}, args.format)
    return 0


def _register_address(text: str) -> Any:
    """``0x803808``/``8402952`` -> int; anything else is a register name for the client."""
    try:
        return int(text, 0)
    except ValueError:
        return text


def _mmr_read(args: argparse.Namespace) -> int:
    with de1_client(args).connect() as client:
        values = client.read_mmr(_register_address(args.register), args.words)
        start = client._mmr_address(_register_address(args.register))
    from ..de1 import codec
    rows = []
    for i, raw in enumerate(values):
        address = start + 4 * i
        reg = codec.REGISTER_BY_ADDRESS.get(address)
        rows.append({"address": f"0x{address:06X}", "raw": raw,
                     "name": reg.name if reg else None,
                     "value": reg.decode(raw) if reg else None,
                     "unit": reg.unit if reg else None})
    emit(rows, args.format)
    return 0


def _mmr_write(args: argparse.Namespace) -> int:
    from ..de1 import codec
    from ..de1.client import DE1Client
    require_writes(args, "an MMR write")
    try:
        raw = int(args.value, 0)
    except ValueError:
        raise UsageError(f"value {args.value!r}: give a whole raw number") from None
    address = DE1Client._mmr_address(_register_address(args.register))
    reg = codec.check_raw_mmr_write(address, raw)  # refused before connecting
    with de1_client(args, allow_writes=True).connect() as client:
        back = client.write_mmr(address, raw)
    emit({"address": f"0x{address:06X}", "name": reg.name, "raw": back,
          "value": reg.decode(back), "unit": reg.unit}, args.format)
    return 0


def _time_read(args: argparse.Namespace) -> int:
    with de1_client(args).connect() as client:
        seconds = client.read_time()
    emit({"timestamp": seconds}, args.format)
    return 0


def _time_set(args: argparse.Namespace) -> int:
    require_writes(args, "SetTime")
    if args.timestamp is not None:
        from ..de1 import codec
        codec.encode_set_time(args.timestamp)  # out of range: refused before connecting
    with de1_client(args, allow_writes=True).connect() as client:
        seconds = client.set_time(args.timestamp)
    emit({"timestamp": seconds}, args.format)
    return 0


def _visualizer_upload(args: argparse.Namespace) -> int:
    from ..de1.visualizer import VisualizerUploader
    if args.config:
        uploader = VisualizerUploader.from_file(args.config)
        if args.url:
            raise UsageError("give the URL in the --config file or with --url, not both")
    else:
        uploader = VisualizerUploader(args.url, timeout=args.timeout)
    try:
        with open(args.file, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file!r}: {exc.strerror}") from None
    name = os.path.basename(args.file)
    result = uploader.upload(data, filename=name)
    emit({"id": result.id, "url": result.url}, args.format)
    return 0


def _firmware_upload(args: argparse.Namespace) -> int:
    from ..de1.firmware import load_firmware
    from ..de1.models import UploadProgress
    require_writes(args, "firmware upload")
    image = load_firmware(args.file)  # check the header before connecting
    with de1_client(args, allow_writes=True).connect() as client:
        # an interrupted or failed upload ends with a line saying where it stopped
        with UploadDisplay("firmware upload", len(image.data)) as display, \
                client.subscribe(display, UploadProgress):
            version = client.upload_firmware(image.data, timeout=max(args.timeout, 3600.0))
        emit({"uploaded_bytes": len(image.data), "version": version,
              "note": "active after the DE1 restarts"}, args.format)
    return 0


def _shot(args: argparse.Namespace) -> int:
    from ..de1.sequencer import ShotSequencer, check_stop_targets
    if args.stop_at_weight is None and args.stop_at_volume is None and \
            args.stop_at_time is None:
        raise UsageError("give at least one of --stop-at-weight, --stop-at-volume, "
                         "--stop-at-time")
    require_writes(args, "a shot (wake, start espresso, tare)")
    check_stop_targets(args.stop_at_weight, args.stop_at_volume, args.stop_at_time)
    if not args.time_scale > 0:
        raise UsageError(f"--time-scale {args.time_scale} must be > 0")
    scale = None
    client = de1_client(args, allow_writes=True, allow_remote_start=True)
    try:
        client.connect()
        if args.stop_at_weight is not None:
            from ..scale.client import SkaleClient
            address = find_address(args, "Skale", args.scale)
            scale = SkaleClient(address, backend=args.backend, hci_device=args.hci,
                                serial_port=args.serial_port, send_delay=args.send_delay,
                                timeout=args.timeout,
                                connect_timeout=max(args.timeout, 5.0),
                                time_scale=args.time_scale, allow_writes=True).connect()
        client.wake()
        with ShotSequencer(client, scale, stop_at_weight=args.stop_at_weight,
                           stop_at_volume=args.stop_at_volume, stop_at_time=args.stop_at_time,
                           time_scale=args.time_scale) as seq:
            client.start_espresso()
            try:
                record = seq.wait_complete(timeout=300.0 / args.time_scale + 30)
            except BaseException:  # Ctrl-C or no completion: never leave the machine pouring
                try:
                    client.stop_flow(timeout=5.0)
                except Exception as exc:
                    sys.stderr.write(f"could not stop the shot: {exc}\n")
                raise
        out = {"stop_reason": record.stop_reason, "final_weight_g": record.final_weight_g,
               "duration_s": round(record.elapsed_s[-1], 2) if record.elapsed_s else 0.0,
               "volume_ml": round(sum(client.volume), 1),
               "peak_pressure_bar": round(max(record.pressure_bar or (0.0,)), 2)}
        if args.visualizer:
            import json
            from ..de1.profile import visualizer_json
            with open(args.visualizer, "w", encoding="utf-8") as fh:
                json.dump(visualizer_json(record), fh)
            out["visualizer_file"] = args.visualizer
        emit(out, args.format)
    finally:
        client.close()
        if scale is not None:
            scale.close()
    return 0


def _sim(args: argparse.Namespace) -> int:
    """Until SIGINT, SIGTERM or SIGHUP; then the rig and the fake dongle close and a tool
    directory this command made is removed (see ``cli/sim.py``)."""
    from ..rigs.espresso import DE1Rig
    from .sim import hold
    if not args.speed > 0:
        raise ConfigurationError(f"--speed {args.speed} must be > 0")
    rig = DE1Rig(speed=args.speed, firmware_build=args.firmware_build,
                 ghc_active=args.ghc_active, seed=args.seed)
    made: List[str] = []  # the tool directory, once this command created it
    parts: List[Any] = []  # the fake dongle, once started

    def start() -> None:
        try:
            rig.start("127.0.0.1", args.port)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on 127.0.0.1:{args.port}: {exc}") from exc
        directory = args.dir
        if directory is None:
            directory = tempfile.mkdtemp(prefix="pyburnerkit-ble-")
            made.append(directory)
        rig.tool_dir(directory)
        print(f"PATH={directory}", flush=True)
        print(f"DE1={rig.de1.address}", flush=True)
        assert rig.skale is not None  # the rig was made with its scale
        print(f"SKALE={rig.skale.address}", flush=True)
        if args.bgapi:
            from ..ble.fakebgapi import FakeBled112
            parts.append(FakeBled112(rig.host).start())
            print(f"BGAPI={parts[-1].port}", flush=True)

    def cleanup() -> None:
        for dongle in parts:
            dongle.close()
        rig.close()
        for directory in made:  # we made it: remove it with the fake tools
            import shutil
            shutil.rmtree(directory, ignore_errors=True)

    return hold(start, cleanup)


def demo(write: Callable[[str], None], *, duration: float = 6.0) -> None:
    """A live session: a simulated DE1 + Skale behind the fake gatttool, driven by pygatt."""
    from ..de1.client import DE1Client
    from ..de1.sequencer import ShotSequencer
    from ..rigs.espresso import DE1Rig
    from ..scale.client import SkaleClient

    speed = 6.0
    rig = DE1Rig(speed=speed, seed=3).start("127.0.0.1", 0)
    assert rig.skale is not None  # the rig was made with its scale
    directory = tempfile.mkdtemp(prefix="pyburnerkit-demo-")
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = directory + os.pathsep + old_path
    rig.tool_dir(directory)
    de1 = scale = None
    try:
        started = time.monotonic()
        de1 = DE1Client(rig.de1.address, allow_writes=True, allow_remote_start=True,
                        send_delay=0.002).connect()
        state, info, levels = de1.state, de1.info, de1.water_levels
        assert state is not None and info is not None and levels is not None  # read at connect
        write(f"de1: connected through pygatt + fake gatttool in "
              f"{time.monotonic() - started:.2f} s; {state.name}, firmware build "
              f"{info.firmware_build}, water {levels.level_mm:.1f} mm")
        scale = SkaleClient(rig.skale.address, send_delay=0.002, time_scale=speed,
                            allow_writes=True).connect()
        scale_info = scale.info
        assert scale_info is not None  # read at connect
        write(f"de1: Skale connected ({scale_info.model}, battery {scale_info.battery})")
        de1.wake()
        with ShotSequencer(de1, scale, stop_at_weight=30.0, time_scale=speed) as seq:
            de1.start_espresso()
            write("de1: espresso started, stop at 30.0 g")
            record = seq.wait_complete(timeout=max(duration, 1.0) * 10)
        write(f"de1: shot stopped by {record.stop_reason}; final weight "
              f"{record.final_weight_g:.1f} g after {record.elapsed_s[-1]:.1f} s (simulated), "
              f"peak {max(record.pressure_bar):.1f} bar")
    finally:
        for client in (de1, scale):
            if client is not None:
                client.close()
        rig.close()
        os.environ["PATH"] = old_path
        import shutil
        shutil.rmtree(directory, ignore_errors=True)
