"""DE1 firmware files (``bootfwupdate.dat``): header check and the 16-byte upload chunks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Tuple, Union

from ..errors import ConfigurationError, ProtocolError
from . import codec

MAX_FILE_BYTES = 1 << 20  # pyDE1 refuses firmware bodies over 1 MiB


@dataclass(frozen=True)
class FirmwareImage:
    data: bytes
    version: int
    byte_count: int
    cpu_bytes: int

    @property
    def chunk_count(self) -> int:
        return (len(self.data) + 15) // 16

    def chunks(self) -> Iterator[Tuple[int, bytes]]:
        """(offset, 16 bytes) for the whole file, header included, from address 0."""
        for off in range(0, len(self.data), 16):
            yield off, self.data[off:off + 16].ljust(16, b"\x00")


def load_firmware(source: Union[str, bytes]) -> FirmwareImage:
    """Read and check a firmware file; raises ConfigurationError naming what is wrong."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        try:
            with open(source, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfigurationError(f"cannot read firmware file {source!r}: {exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise ConfigurationError(f"firmware file is over the limit of {MAX_FILE_BYTES} bytes")
    try:
        header = codec.decode_firmware_header(data)
    except ProtocolError as exc:
        raise ConfigurationError(f"not a DE1 firmware file: {exc}") from exc
    if header["board_marker"] != codec.FW_BOARD_MARKER:
        raise ConfigurationError(
            f"not a DE1 firmware file: board marker 0x{header['board_marker']:08X}, expected "
            f"0x{codec.FW_BOARD_MARKER:08X}")
    count = int(header["byte_count"])
    if 64 + count != len(data):
        raise ConfigurationError(
            f"firmware header says {count} bytes after the 64-byte header but the file has "
            f"{len(data) - 64}")
    if int(header["cpu_bytes"]) > count:
        raise ConfigurationError("firmware header: CPUBytes exceeds ByteCount")
    return FirmwareImage(data, int(header["version"]), count,
                         int(header["cpu_bytes"]))


def make_test_image(version: int = 1350, body_bytes: int = 1024, seed: int = 1) -> bytes:
    """A well-formed image for tests and the simulator (random body; not real firmware)."""
    import random
    rng = random.Random(seed)
    body = bytes(rng.getrandbits(8) for _ in range(body_bytes))
    return codec.encode_firmware_header(version, body_bytes) + body
