"""BLE plumbing shared by the DE1 and scale drivers.

* :mod:`.transport`: pygatt (gatttool default, BGAPI selectable) and an in-process transport;
* :mod:`.session`: the worker thread that owns every pygatt call of a client's adapter;
* :mod:`.peripheral`, :mod:`.simhost`, :mod:`.fakegatt`: simulated peripherals served to
  unmodified pygatt through fake ``gatttool`` and ``hcitool`` programs;
* :mod:`.uuids` (``uuid16``), :mod:`.bench` (``Bench``, the simulated world's clock and cup)
  and :mod:`.rig` (``SimRig``, ``bench_peripheral``): what the DE1 and scale families share,
  so that neither imports the other.

Importing this package does not import pygatt.
"""

from __future__ import annotations

__all__ = ["scan"]


def scan(timeout: float = 5.0, *, name: str = "", address: str = "", backend: str = "gatttool",
         hci_device: str = "hci0", serial_port=None, transport=None):
    """Scan for BLE devices; keep those whose name starts with ``name`` and/or whose address is
    ``address``. Returns a list of ``{"address", "name"}`` dicts.
    """
    from ..errors import ConfigurationError
    from .transport import PygattTransport

    if not timeout > 0:
        raise ConfigurationError(f"scan timeout={timeout!r} s must be > 0 s")
    t = transport or PygattTransport(backend, hci_device=hci_device, serial_port=serial_port)
    try:
        found = t.scan(timeout)
    finally:
        if transport is None:
            t.close()
    out = []
    for dev in found:
        if name and not (dev.get("name") or "").startswith(name):
            continue
        if address and (dev.get("address") or "").upper() != address.upper():
            continue
        out.append(dev)
    return out
