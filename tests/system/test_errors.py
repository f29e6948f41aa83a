"""Named errors: a user's mistake is one line, a bug keeps its traceback.

The ``questlearn`` command prints a :class:`~questlearn.errors.QuestlearnError`
as ``questlearn COMMAND: error: ...`` (exit status 2); any other exception,
a plain ``ValueError`` from numpy included, is a bug and shows its traceback.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_env

import questlearn
from questlearn import errors

PACKAGE = Path(questlearn.__file__).resolve().parent

# Exceptions a user may see that are not a user's mistake: a failing batch is a bug or a dead worker (train and
# evaluate raise the named error instead when the cause was a damaged shard).
NOT_A_USERS_MISTAKE = {"questlearn.data._supervision.BatchLoadError"}

# The bare ``raise ValueError`` allowed to stay in the package, by (module, function): each is caught inside
# questlearn and raised again as a named error, or guards an internal invariant no user input reaches.
SORTED_MODULES = (".",)
INTERNAL_VALUE_ERRORS = {
    ("train/_backup_file.py", "_read_state"): 2,  # caught by load_backup: a DamagedBackupError (a ModelFileError)
    ("train/_model_store.py", "_read_pointer"): 1,  # caught there: a DamagedBackupError naming the pointer's URL
    ("schema/encoding.py", "__post_init__"): 2,  # an Encoding built wrong; the split builds it from checked options
    ("split/_scatter.py", "deal"): 1,  # more rows than free places: the split opens shards for every row first
    ("split/_shards.py", "npy_header"): 1,  # a shape whose header outgrows the fixed 128 bytes
}


def run_cli_with(replacement: str, *args) -> subprocess.CompletedProcess:
    """``questlearn plot ...`` in a child whose ``_plot`` runs ``replacement`` (Python raising something)."""
    code = ("import sys\n"
            "import questlearn.cli as cli\n"
            "from questlearn import errors\n"
            f"def _plot(args):\n    {replacement}\n"
            "cli._plot = _plot\n"
            f"sys.exit(cli.main(['plot', *{[str(arg) for arg in args]!r}]))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env(), timeout=900)


def test_a_bug_inside_a_command_shows_its_traceback(tmp_path):
    result = run_cli_with("raise ValueError('operands could not be broadcast together')", tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last)" in result.stderr and ", in _plot" in result.stderr
    assert result.stderr.rstrip().endswith("ValueError: operands could not be broadcast together")
    assert "error:" not in result.stderr.replace("ValueError:", "")


def test_a_users_mistake_is_one_line_with_exit_status_2(tmp_path):
    result = run_cli_with("raise errors.IntegrityError('shard file x.npy does not match the SHA-256')", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["questlearn plot: error: shard file x.npy does not match the SHA-256"]


def test_a_bug_raised_in_process_propagates_from_main(monkeypatch, tmp_path):
    from questlearn import cli

    def buggy(args):
        raise ValueError("a bug")

    monkeypatch.setattr(cli, "_plot", buggy)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["plot", str(tmp_path)])


def test_a_model_dir_without_history_is_one_line(tmp_path, capsys):
    from questlearn import cli

    assert cli.main(["plot", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"questlearn plot: error: {tmp_path} holds no history.json: train a model there first\n"


def test_a_damaged_history_is_a_model_file_error(tmp_path):
    from questlearn.train.plots import load_history

    (tmp_path / "history.json").write_text('{"loss": [0.5', encoding="utf-8")
    with pytest.raises(errors.ModelFileError, match="history.json is not valid JSON"):
        load_history(tmp_path / "history.json")


def all_modules():
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="questlearn."):
        if info.name != "questlearn.__main__":
            yield importlib.import_module(info.name)


def test_every_exception_class_a_user_can_see_is_a_questlearn_error():
    defined = {}
    for module in all_modules():
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__.startswith("questlearn"):
                defined[f"{value.__module__}.{value.__qualname__}"] = value
    assert "questlearn.io.csvscan.CsvFormatError" in defined  # the walk reached the modules
    not_named = sorted(name for name, kind in defined.items()
                       if not issubclass(kind, errors.QuestlearnError) and name not in NOT_A_USERS_MISTAKE)
    assert not_named == [], "exception classes a user can see must subclass questlearn.errors.QuestlearnError"


def bare_value_errors(path: Path) -> dict:
    """``{(module path, enclosing function): count}`` of ``raise ValueError(...)`` in ``path``."""
    found = {}

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Raise) and child.exc is not None:
                raised = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                if isinstance(raised, ast.Name) and raised.id == "ValueError":
                    key = (path.relative_to(PACKAGE).as_posix(), function)
                    found[key] = found.get(key, 0) + 1
            visit(child, name)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), None)
    return found


def test_no_bare_value_error_is_left_where_a_user_reaches_it():
    found = {}
    for entry in SORTED_MODULES:
        target = PACKAGE / entry
        for path in sorted(target.rglob("*.py")) if target.is_dir() else [target]:
            found.update(bare_value_errors(path))
    assert found == INTERNAL_VALUE_ERRORS, (
        "raise a named error from questlearn.errors for a user's mistake (a bug: RuntimeError), not a bare ValueError")
