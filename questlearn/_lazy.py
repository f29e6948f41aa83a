"""Public names of a package, imported on first use (PEP 562).

A package's ``__init__`` lists where each public name lives; nothing is
imported until the name is used, so ``import questlearn`` and
``import questlearn.split`` stay free of Keras, pandas and jsonschema.
:func:`deferred_modules` does the same for a module another package imports
but that questlearn never uses (Keras's scikit-learn wrappers and image plots).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
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


# Keras's scikit-learn wrappers import scikit-learn and SciPy when ``import keras`` runs, wherever
# scikit-learn is installed, and its image-gallery plots import matplotlib's pyplot: about a sixth and a tenth
# of Keras's import time, in every process questlearn starts (commands, data workers, their forkserver),
# none of which uses them.
KERAS_DEFERRED = ("keras.wrappers", "keras.visualization", "keras.src.visualization")

# What a deferred module answers without running: the import system's record of it. Code that walks
# ``sys.modules`` reads these from every module (TensorFlow's autograph looks for each one's ``__file__``
# whenever it converts a function, as a SavedModel's export does), and would run them all otherwise.
MODULE_RECORD = frozenset({"__name__", "__file__", "__cached__", "__spec__", "__loader__", "__package__", "__class__"})


_LAZY_MODULE = getattr(importlib.util, "_LazyModule", None)  # the class LazyLoader gives a module not yet run
_SWITCH = threading.Lock()


class _DeferredModule(types.ModuleType):
    """A module whose code runs on first use: reading or deleting any attribute but its :data:`MODULE_RECORD`
    turns it back into :class:`importlib.util.LazyLoader`'s module, which runs it (Python's own code, so the
    import lock and its checks stay as each Python version has them)."""

    def __getattribute__(self, name):
        if name in MODULE_RECORD:
            return types.ModuleType.__getattribute__(self, name)
        _to_lazy_module(self)
        return getattr(self, name)

    def __delattr__(self, name):
        _to_lazy_module(self)
        delattr(self, name)


def _to_lazy_module(module) -> None:
    with _SWITCH:
        if type(module) is _DeferredModule:
            module.__class__ = _LAZY_MODULE


class _DeferredLoader(importlib.util.LazyLoader):
    def exec_module(self, module):
        super().exec_module(module)
        if _LAZY_MODULE is not None and type(module) is _LAZY_MODULE:
            module.__class__ = _DeferredModule


class _DeferredModules(importlib.abc.MetaPathFinder):
    """Finds ``names`` as the path finder does, with a loader that runs their code on first use."""

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, name, path=None, target=None):
        if name not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _DeferredLoader(spec.loader)
        return spec


@contextlib.contextmanager
def deferred_modules(names=KERAS_DEFERRED):
    """Within the block, modules named in ``names`` that get imported run their code on first use.

    ``import keras`` binds ``keras.wrappers`` without running it (so without importing
    scikit-learn); the first attribute of it that anyone reads (``keras.wrappers.SKLearnClassifier``,
    ``import keras.wrappers``) imports it as usual, except the import system's record of the module
    (:data:`MODULE_RECORD`: its name, file, spec), which it answers as it is. Uses
    :class:`importlib.util.LazyLoader`.
    """
    finder = _DeferredModules(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
