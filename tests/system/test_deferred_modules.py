"""A deferred module runs its code on first use, and answers the import system's record of it before that."""

import sys
import threading

import pytest

from questlearn._lazy import MODULE_RECORD, deferred_modules


@pytest.fixture
def module_that_counts_its_runs(tmp_path, monkeypatch):
    """A package ``counted_package`` whose code adds 1 to ``runs`` in ``sys.modules['run_counter']`` each run."""
    package = tmp_path / "counted_package"
    package.mkdir()
    (package / "__init__.py").write_text("import sys\nsys.modules['run_counter'].runs += 1\nVALUE = 42\n")
    counter = type(sys)("run_counter")
    counter.runs = 0
    monkeypatch.setitem(sys.modules, "run_counter", counter)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield counter
    sys.modules.pop("counted_package", None)


def test_the_record_is_read_without_running_and_any_other_attribute_runs_it_once(module_that_counts_its_runs):
    with deferred_modules(("counted_package",)):
        import counted_package
    assert module_that_counts_its_runs.runs == 0
    for name in MODULE_RECORD:  # what code walking sys.modules reads (autograph reads every __file__)
        getattr(counted_package, name)
    assert counted_package.__file__.endswith("__init__.py") and counted_package.__name__ == "counted_package"
    assert module_that_counts_its_runs.runs == 0
    threads = [threading.Thread(target=lambda: counted_package.VALUE) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert counted_package.VALUE == 42 and module_that_counts_its_runs.runs == 1
    assert type(counted_package) is type(sys)  # an ordinary module from then on


def test_deleting_an_attribute_of_a_deferred_module_runs_it_first(module_that_counts_its_runs):
    with deferred_modules(("counted_package",)):
        import counted_package
    del counted_package.VALUE
    assert module_that_counts_its_runs.runs == 1 and not hasattr(counted_package, "VALUE")
