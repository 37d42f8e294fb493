"""Pure encode/decode for the Atomax Skale II (spec ``de1.md`` section 7.1). No I/O."""

from __future__ import annotations

from typing import Mapping, Tuple

from ..ble.uuids import uuid16
from ..errors import ConfigurationError, ProtocolError

SERVICE = uuid16(0xFF08)
COMMAND = uuid16(0xEF80)
WEIGHT = uuid16(0xEF81)
BUTTON = uuid16(0xEF82)
UNKNOWN_EF83 = uuid16(0xEF83)
BATTERY_SERVICE = uuid16(0x180F)
BATTERY = uuid16(0x2A19)
INFO_SERVICE = uuid16(0x180A)
MODEL = uuid16(0x2A24)
FIRMWARE_REV = uuid16(0x2A26)
HARDWARE_REV = uuid16(0x2A27)
SOFTWARE_REV = uuid16(0x2A28)
MANUFACTURER = uuid16(0x2A29)

NAME_PREFIX = "Skale"

CMD_TARE = 0x10
CMD_SHOW_WEIGHT = 0xEC
CMD_DISPLAY_ON = 0xED
CMD_DISPLAY_OFF = 0xEE
CMD_GRAMS = 0x03
CMD_OUNCES = 0x02
CMD_PERSIST_UNITS = 0x04
CMD_TIMER_ZERO = 0xD0
CMD_TIMER_START = 0xD1
CMD_TIMER_STOP = 0xD2
#: de1app's start byte; de1app stops with 0xD1 (pyDE1's start) and resets with 0xD0
CMD_DE1APP_TIMER_START = 0xDD
KNOWN_COMMANDS = frozenset({CMD_TARE, CMD_SHOW_WEIGHT, CMD_DISPLAY_ON, CMD_DISPLAY_OFF,
                            CMD_GRAMS, CMD_OUNCES, CMD_PERSIST_UNITS, CMD_TIMER_ZERO,
                            CMD_TIMER_START, CMD_TIMER_STOP, CMD_DE1APP_TIMER_START})

TIMER_ACTIONS = ("start", "stop", "reset")
#: The timer command bytes (spec 7.1): the two apps disagree [DIFF], so both are kept.
#: "pyde1" (the default) is what pyDE1 sends; "de1app" is what Decent's own app sends.
TIMER_COMMANDS: Mapping[str, Mapping[str, int]] = {
    "pyde1": {"start": CMD_TIMER_START, "stop": CMD_TIMER_STOP, "reset": CMD_TIMER_ZERO},
    "de1app": {"start": CMD_DE1APP_TIMER_START, "stop": CMD_TIMER_START,
               "reset": CMD_TIMER_ZERO},
}


def check_timer_style(style: str) -> str:
    """:raises ConfigurationError: a style other than ``pyde1`` or ``de1app``."""
    if style not in TIMER_COMMANDS:
        raise ConfigurationError(f"timer_style={style!r}: expected one of "
                                 f"{', '.join(TIMER_COMMANDS)}")
    return style


def encode_timer(action: str, style: str = "pyde1") -> bytes:
    """The EF80 write for a timer ``action`` (start, stop, reset) in the byte set ``style``.

    :raises ConfigurationError: an unknown action or style.
    """
    commands = TIMER_COMMANDS[check_timer_style(style)]
    if action not in commands:
        raise ConfigurationError(f"timer action {action!r}: expected one of "
                                 f"{', '.join(TIMER_ACTIONS)}")
    return encode_command(commands[action])


def decode_timer(data: bytes, style: str = "pyde1") -> str:
    """The timer action an EF80 write means in ``style`` ("" when it is not a timer command).

    :raises ProtocolError: an empty write.
    """
    cmd, _ = decode_command(data)
    for action, code in TIMER_COMMANDS[check_timer_style(style)].items():
        if code == cmd:
            return action
    return ""

WEIGHT_LIMIT_G = 838860.7  # what a signed 24-bit count of 0.1 g can carry


def _bytes(name: str, data: object, length: int) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"{name}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < length:
        raise ProtocolError(f"{name}: expected at least {length} bytes, got {len(data)}: "
                            f"{data.hex(' ')}", frames=[data])
    return data


def decode_weight(data: bytes) -> float:
    """EF81 notification -> grams: signed little-endian 24-bit count of 0.1 g at bytes 1-3."""
    data = _bytes("Skale weight", data, 4)
    return int.from_bytes(data[1:4], "little", signed=True) / 10.0


def encode_weight(grams: float, second: float = 0.0) -> bytes:
    """What the scale sends: header byte, weight, a spare byte, a second reading."""
    def s24(v: float) -> bytes:
        if not -WEIGHT_LIMIT_G <= v <= WEIGHT_LIMIT_G:
            raise ConfigurationError(f"weight {v!r} g is out of range: the limit is "
                                     f"±{WEIGHT_LIMIT_G:g} g")
        return int(round(v * 10)).to_bytes(3, "little", signed=True)
    return b"\xef" + s24(grams) + b"\x00" + s24(second)


def decode_button(data: bytes) -> int:
    return _bytes("Skale button", data, 1)[0]


def encode_command(command: int, *args: int) -> bytes:
    if command not in KNOWN_COMMANDS and command not in (0xCA, 0x09):
        raise ConfigurationError(f"unknown Skale command 0x{command:02X}")
    for a in args:
        if not 0 <= a <= 255:
            raise ConfigurationError(f"Skale command argument {a!r} is out of range 0..255")
    return bytes((command,) + tuple(args))


def decode_command(data: bytes) -> Tuple[int, bytes]:
    data = _bytes("Skale command", data, 1)
    return data[0], data[1:]


def decode_battery(data: bytes) -> int:
    """Battery level byte (pyDE1 notes 0..63 on the Skale)."""
    return _bytes("battery", data, 1)[0]
