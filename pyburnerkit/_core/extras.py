"""Import an optional dependency or say which extra installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import BackendUnavailableError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`BackendUnavailableError` naming ``pyburnerkit[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(extra, module, reason=str(exc)) from exc
