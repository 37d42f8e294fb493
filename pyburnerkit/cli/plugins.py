"""The one loop over the family registry that ``main``, ``sim`` and ``demo`` share.

Families come from the registry (:mod:`pyburnerkit.families`), third-party ones included, so
nothing in ``cli/`` lists families by hand. A plug-in that cannot be loaded, or whose hook
raises, costs its own commands only: it is named on stderr and every other command stays.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Iterator, Optional, Tuple

from .. import families as registry
from ..families import Family

log = logging.getLogger(__name__)


def warn(line: str) -> None:
    """One line on stderr, as every CLI warning looks."""
    print(f"pyburnerkit: warning: {line}", file=sys.stderr)


def hooks(field: str) -> Iterator[Tuple[Family, Optional[Any], Optional[str]]]:
    """``(family, hook, why_not)`` for every family that declares ``field`` (``"cli"``,
    ``"cli_sim"``, ``"cli_demo"``), in registry order.

    ``hook`` is the imported object, or None with ``why_not`` set: the family's extra is not
    installed (the pip command), or its module failed to import (a broken plug-in must not
    take the whole command down). Built-in CLI modules import their drivers lazily, so they
    load whether or not the extra is there; a caller that runs the hook checks ``why_not``.
    """
    for family in registry.families():
        if not getattr(family, field):
            continue
        try:
            hook = family.load(field)
        except Exception as exc:  # ImportError, or whatever a plug-in raises at import
            yield family, None, f"{family.name}: {type(exc).__name__}: {exc}"
            continue
        yield family, hook, registry.missing(family)


def call_hook(family: Family, what: str, hook: Callable[..., Any], *args: Any) -> bool:
    """Run a family's registration hook (``register(subparsers)``...) on the calling thread.

    :returns: False when the hook raised: it is named on stderr (the traceback goes to the
        ``pyburnerkit.cli.plugins`` logger, shown with ``-v``) and the command goes on without
        that family's ``what``.
    """
    try:
        hook(*args)
    except Exception as exc:  # a plug-in's bug must not take the other families down
        log.debug("the %s hook of family %r raised", what, family.name, exc_info=True)
        warn(f"no {family.name} {what} ({family.name}: {type(exc).__name__}: {exc})")
        return False
    return True


def report_problems() -> None:
    """A line per plug-in the registry could not load (broken or duplicate entry points)."""
    for problem in registry.problems():
        warn(str(problem))
