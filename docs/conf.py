"""Sphinx configuration: the narrative pages plus an API reference built from the docstrings.

Built by ``.ci/run`` with ``-W -n`` (warnings are errors, every cross-reference must resolve).
"""

import os
import sys
import typing

from docutils import nodes

sys.path.insert(0, os.path.abspath(".."))

from pyburnerkit import __version__  # noqa: E402  (after the path is set)

project = "pyburnerkit"
author = "the pyburnerkit developers"
copyright = "2026, the pyburnerkit developers"
release = version = __version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.viewcode"]
exclude_patterns = ["_build"]
nitpicky = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
html_theme = "alabaster"
# Standard-library types the reference mentions: without intersphinx (the build runs offline)
# they have nothing to link to. ``_dt`` is ``datetime`` imported under another name. Never list
# a pyburnerkit name here: document it, or see _private_target below.
nitpick_ignore_regex = [
    ("py:class", r"(typing|collections\.abc|concurrent\.futures|datetime|_dt|threading|socket"
                 r"|enum|pathlib|logging|random)\..*"),
    ("py:class", r"(Any|Optional|Callable|Iterator|Iterable|Mapping|Sequence|T|C|S|U)"),
    # type variables, which have no entry to link to, under their module's name
    ("py:class", r"pyburnerkit(\.\w+)*\.(T|C|S|U|_S|_T)"),
]


def _private(dotted):
    """True for a dotted name with a private part (``pyburnerkit._core.client``, ``_Batch``)."""
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def _is_private(cls):
    """True for a class in a private module (``pyburnerkit._core``) or with a private name."""
    return _private(f"{cls.__module__}.{cls.__qualname__}")


def _public_bases(app, name, obj, options, bases):
    """Show a private base class (``_CodeEnum``, ``BaseClient``...) as its first public base.

    Private classes are implementation detail without a reference entry, so naming them under
    "Bases:" would be a dangling cross-reference; what they give the documented class is listed
    on it (``:inherited-members:`` in api.rst).
    """
    public = []
    for base in bases:
        base = typing.get_origin(base) or base  # BaseClient[Session] -> BaseClient
        if _is_private(base):
            base = next(b for b in base.__mro__ if not _is_private(b))
        if base not in public:
            public.append(base)
    bases[:] = public


# A private type that a public signature names, and the public entry that documents it.
_PRIVATE_ALIASES = {"pyburnerkit._core.timeouts._Default": "pyburnerkit.types.DEFAULT",
                    "pyburnerkit.types._Default": "pyburnerkit.types.DEFAULT"}


def _core_private_names():
    """Classes of ``pyburnerkit._core`` that :mod:`pyburnerkit.driver` does not make public,
    by bare name: signatures of the driver classes name them unqualified."""
    import importlib
    import pkgutil

    import pyburnerkit._core as core
    from pyburnerkit import driver

    found = {"_Default": "pyburnerkit.types._Default"}
    for info in pkgutil.iter_modules(core.__path__):
        module = importlib.import_module(f"pyburnerkit._core.{info.name}")
        for name, obj in vars(module).items():
            if (isinstance(obj, type) and obj.__module__ == module.__name__
                    and name not in driver.__all__):
                found[name] = f"{module.__name__}.{name}"
    return found


_CORE_PRIVATE = _core_private_names()


def _private_target(app, env, node, contnode):
    """Resolve a type hint that names a private pyburnerkit class (``_Default``, ``_Batch``, a
    class of ``pyburnerkit._core``): to its public entry when there is one, else as plain text.

    Only private targets are handled; a public name that does not resolve still fails the build.
    """
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py":
        return None
    if target in _CORE_PRIVATE:  # an unqualified hint (``from __future__ import annotations``)
        target = _CORE_PRIVATE[target]
    if not target.startswith("pyburnerkit.") or not _private(target):
        return None
    alias = _PRIVATE_ALIASES.get(target)
    if alias:  # link to the public entry, under the public name
        text = nodes.Text(alias.rpartition(".")[2])
        if isinstance(contnode, nodes.Text):
            contnode = text
        else:
            contnode = contnode.copy()  # a shallow copy: the same node type, no children
            contnode += text
        return env.domains["py"].resolve_xref(env, node["refdoc"], app.builder, "data", alias,
                                              node, contnode)
    return contnode


def setup(app):
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("missing-reference", _private_target)
