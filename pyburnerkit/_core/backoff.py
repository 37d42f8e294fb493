"""The reconnect policy lives in :mod:`pyburnerkit.types` (a public value type, below
``_core``); the session machinery imports it from here."""

from __future__ import annotations

from ..types import Reconnect

__all__ = ["Reconnect"]
