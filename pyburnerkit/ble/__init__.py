"""BLE plumbing shared by the DE1 and scale drivers; it knows no device family.

* :mod:`.transport`: pygatt (gatttool default, BGAPI selectable) and an in-process transport;
* :mod:`.session`: the worker thread that owns every pygatt call of a client's adapter;
* :mod:`.endpoint`: the BLE endpoint strings every BLE client takes (an address or ``sim://``);
* :mod:`.peripheral`, :mod:`.simhost`, :mod:`.fakegatt`, :mod:`.fakebgapi`: simulated
  peripherals served to unmodified pygatt through fake ``gatttool``/``hcitool`` programs or an
  emulated BLED112 dongle;
* :mod:`.uuids` (``uuid16``), :mod:`.bench` (``Bench``, the simulated world's clock and cup)
  and :mod:`.rig` (``SimRig``, a simulated radio hosting peripherals on one bench): what the
  DE1 and scale families share, so that neither imports the other. A rig holding devices of
  several families lives above them, in :mod:`pyburnerkit.rigs`.

Importing this package does not import pygatt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional

if TYPE_CHECKING:
    from .transport import Transport

__all__ = ["scan"]


def scan(timeout: float = 5.0, *, name: str = "", address: str = "", backend: str = "gatttool",
         hci_device: str = "hci0", serial_port: Optional[str] = None,
         transport: Optional["Transport"] = None) -> List[Dict[str, Optional[str]]]:
    """Scan for BLE devices; keep those whose name starts with ``name`` and/or whose address is
    ``address``. Blocks for about ``timeout`` seconds (0.01..3600 s).

    :returns: a list of ``{"address", "name"}`` dicts.
    :raises ConfigurationError: ``timeout`` out of range or an unknown ``backend``.
    :raises BackendUnavailableError: pygatt is not installed (and no ``transport`` given).
    :raises DeviceConnectionError: the adapter could not be started or the scan failed.
    """
    from ..errors import check_range
    from .transport import PygattTransport

    check_range("scan timeout", timeout, 0.01, 3600.0, "s")
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
