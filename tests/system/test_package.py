"""The package's shape: no import cycles, light imports, a public API that resolves."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "questlearn"
HEAVY = ("keras", "tensorflow", "pandas", "jsonschema", "jax", "torch")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of questlearn it imports}``, imports inside functions included."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_questlearn_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 40, "the scan found too few modules"
    # a package __init__ that only re-exports lazily is no edge; the modules themselves must form no cycle
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def loaded_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=900, check=True)
    return done.stdout.split()


@pytest.mark.parametrize("code", ["import questlearn", "import questlearn.split", "from questlearn.split import split_csv",
                                  "from questlearn import split_csv, inspect_source",
                                  "import questlearn.cli, contextlib, io\n"
                                  "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
                                  "    questlearn.cli.main(['--help'])"])
def test_starting_up_imports_no_keras_tensorflow_pandas_or_jsonschema(code):
    assert loaded_after(code) == []


def test_keras_imported_by_questlearn_leaves_scikit_learn_matplotlib_and_jax_until_they_are_used(tmp_path):
    """Keras's scikit-learn wrappers import scikit-learn and SciPy at ``import keras``, its image plots matplotlib's
    pyplot, and TensorFlow's TFLite converter imports JAX; questlearn's processes (commands, data workers, their
    forkserver) on the TensorFlow backend import none of them, also after TensorFlow's autograph has converted a
    function (it reads every loaded module's ``__file__``, as a SavedModel's export makes it do), and all of them
    still import and work afterwards."""
    pytest.importorskip("sklearn", reason="scikit-learn is not installed: nothing to defer")
    pytest.importorskip("jax", reason="JAX is not installed: nothing to hide")
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: nothing to defer")
    code = ("import sys\nimport questlearn.quiet, questlearn.data._worker_imports\n"
            "import tensorflow as tf\n"
            "@tf.function\ndef add_one(x):\n    return x + 1 if x.shape.rank else x\n"
            "add_one(tf.constant([1.0]))\n"
            "loaded = lambda: ('sklearn' in sys.modules, 'scipy.stats' in sys.modules, 'matplotlib.pyplot' in sys.modules,"
            " 'jax' in sys.modules)\n"
            "print('before', *loaded())\n"
            "from keras.wrappers import SKLearnClassifier\nfrom sklearn.base import BaseEstimator\nimport jax.numpy\n"
            "from keras.visualization import plot_image_gallery\n"
            "print('after', *loaded(), issubclass(SKLearnClassifier, BaseEstimator), float(jax.numpy.ones(2).sum()),"
            " callable(plot_image_gallery))")
    script = tmp_path / "uses_keras.py"  # a file: autograph converts only a function whose source it can read
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900, check=True,
                          env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    assert done.stdout.split("\n")[:2] == ["before False False False False", "after True True True True True 2.0 True"], (
        done.stdout + done.stderr)


def test_keras_backends_that_need_jax_import_it_through_questlearn():
    """Only the TensorFlow backend imports TensorFlow with JAX hidden: Keras's numpy backend is built on JAX."""
    pytest.importorskip("jax", reason="JAX is not installed: nothing to hide")
    code = "import sys, questlearn.quiet, keras\nprint(keras.backend.backend(), 'jax' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "KERAS_BACKEND": "numpy"})
    assert done.returncode == 0 and done.stdout.split("\n")[0] == "numpy True", done.stdout + done.stderr[-2000:]


def test_the_backend_keras_will_load_is_found_as_keras_finds_it(tmp_path, monkeypatch):
    from questlearn.quiet import configured_backend

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert configured_backend() == "tensorflow"  # no keras.json: Keras's default
    (tmp_path / "keras.json").write_text('{"backend": "jax", "floatx": "float32"}')
    assert configured_backend() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # the variable wins over the file
    assert configured_backend() == "torch"
    monkeypatch.setenv("KERAS_BACKEND", "")  # an empty variable does not count, as in Keras
    assert configured_backend() == "jax"


def test_every_public_name_resolves():
    import importlib

    import questlearn

    for package in ("questlearn", "questlearn.io", "questlearn.schema", "questlearn.split", "questlearn.manifest",
                    "questlearn.data", "questlearn.train", "questlearn.serve"):
        module = importlib.import_module(package)
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{package}.{name}"
    assert questlearn.QuestSequence.__module__ == "questlearn.data.dataset"


def test_the_old_dataset_path_still_works_and_says_it_is_deprecated():
    code = ("import warnings\nwarnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n    import questlearn.dataset\nexcept DeprecationWarning as w:\n    print('deprecated:', w)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=True)
    assert done.stdout.startswith("deprecated: questlearn.dataset is deprecated")
    from questlearn.dataset import QuestSequence
    from questlearn.data import QuestSequence as moved

    assert QuestSequence is moved
