"""How the whole suite (tests/ and the notebooks) runs on parallel pytest-xdist workers, and how
it reports a failure: at once, by name, as well as in the summary at the end."""

import os
import shutil
import tempfile

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Order the tests for parallel workers and keep each ``xdist_group`` on one worker."""
    run_slow_modules_first(items)
    if getattr(config.option, "loadgroup", False):  # inside a pytest-xdist worker under --dist loadgroup
        name_groups(items)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, plus one. Many tests spend part of their time waiting (a child
    process starting, a server answering, a watchdog's poll), and the extra worker fills those gaps."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores + 1


def run_slow_modules_first(items):
    """Modules with slow tests run first, so that the workers end together instead of one
    finishing a long test alone. A test that needs long declares a higher ``timeout`` mark; a
    module ranks by its highest. Tests keep their order inside a module, so module-scoped
    fixtures are built once per worker."""
    def timeout(item):
        mark = item.get_closest_marker("timeout")
        if mark is None:
            return 0.0
        return float(mark.args[0] if mark.args else mark.kwargs.get("timeout", 0.0))

    rank = {}
    for item in items:
        rank[item.path] = max(rank.get(item.path, 0.0), timeout(item))
    items.sort(key=lambda item: -rank[item.path])


def name_groups(items):
    """``--dist loadgroup`` sends every test whose id ends in ``@<group>`` to one worker. pytest-xdist
    adds that suffix through ``item._nodeid``, which pytest 9.2 no longer reads (ids are ``NodeId``
    objects): without this, the cells of one notebook run on different workers."""
    from _pytest.nodeid import NodeId

    for item in items:
        names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                        for mark in item.iter_markers("xdist_group")})
        if names and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")


def pytest_configure(config):
    """Keep the config for :func:`pytest_runtest_logreport` (plain pytest, no plugin needed); share
    one JAX compilation cache (:func:`share_jax_compilation_cache`) across the run."""
    global _CONFIG
    _CONFIG = config
    if not hasattr(config, "workerinput"):  # the controller (or a run without workers): before any worker starts
        share_jax_compilation_cache(config)


def share_jax_compilation_cache(config):
    """Give every process of this run (workers, children, Ray nodes, notebook kernels: they inherit the
    environment) one JAX persistent compilation cache, in a temporary folder removed at the end.

    Many tests train the same small networks on the JAX backend, each in a fresh process (several
    processes of one job, a Ray worker, a resumed run); XLA compiles each function anew there,
    and that is most of their CPU time. The cache keeps only compiled code, keyed by the computation
    and the versions: a hit runs the same code as a compile would produce. A cache the caller set is kept.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    folder = tempfile.mkdtemp(prefix="questlearn-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # every compile, however short
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


_CONFIG = None


def pytest_runtest_logreport(report):
    """Name each failure in the log the moment it happens, not only in the summary at the end,
    so that a run stopped by a time limit (or a test hanging after it) still says what broke.

    Under pytest-xdist this runs in the controller for every worker's report; in the workers it
    does nothing (their output is not shown)."""
    if not report.failed or _CONFIG is None or hasattr(_CONFIG, "workerinput"):
        return
    reporter = _CONFIG.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    kind = "FAILED" if report.when == "call" else f"ERROR at {report.when}"
    summary = ""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        summary = " - " + " ".join(str(crash.message).split())[:300]
    reporter.write("\n")  # after the progress characters of this line
    reporter.write_line(f"{kind} {report.nodeid}{summary}", red=True, bold=True)
    getattr(reporter, "flush", lambda: None)()
