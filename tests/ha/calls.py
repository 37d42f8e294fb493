"""How the command plane calls a control's client method, for the families' table tests."""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Tuple

from pyburnerkit.semantics import Entity


def call_forms(entity: Entity) -> List[Tuple[Tuple[Any, ...], Dict[str, Any]]]:
    """Every call form the command plane makes for ``entity``."""
    control = entity.control
    assert control is not None
    if entity.kind == "button":
        values: List[Any] = []
    elif entity.kind == "number":
        values = [control.minimum, control.maximum]
    elif entity.kind == "switch":
        values = [control.on, control.off]
    else:
        assert control.choices, entity
        values = list(control.choices.values())
    if control.argument == "none":
        return [((), {})]
    if control.argument == "value":
        return [((v,), {}) for v in values]
    return [((), {control.argument: v}) for v in values]


def assert_method_takes_every_call(client_class: type, entity: Entity) -> None:
    """``client_class`` has the control's method, and each call form binds to it."""
    assert entity.control is not None
    method = getattr(client_class, entity.control.method, None)
    assert callable(method), f"{client_class.__name__} has no {entity.control.method}"
    signature = inspect.signature(method)
    for args, kwargs in call_forms(entity):
        signature.bind(None, *args, **kwargs)  # None stands for self
