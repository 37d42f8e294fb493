"""Fixtures shared by the BLE families (see tests/ble/simrig.py)."""

from ..ble.simrig import rig, rig_on_path  # noqa: F401  (pytest fixtures)
