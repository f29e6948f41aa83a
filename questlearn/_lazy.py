"""Public names of a package, imported on first use (PEP 562).

A package's ``__init__`` lists where each public name lives; nothing is
imported until the name is used, so ``import questlearn`` and
``import questlearn.split`` stay free of Keras, pandas and jsonschema.
"""

from __future__ import annotations

from importlib import import_module


def lazy_exports(package: str, homes: dict[str, str]):
    """Return ``(__getattr__, __dir__)`` for ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    homes : dict
        ``{public name: module}``, the module relative to the package
        (``"._sequential"``) or absolute.

    Returns
    -------
    tuple of callables
        The module-level ``__getattr__`` and ``__dir__`` to assign in the
        package's ``__init__``.
    """
    namespace = import_module(package).__dict__

    def __getattr__(name: str):
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(homes[name], package), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__():
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__
