"""How the whole suite (tests/ and the notebooks) runs on parallel pytest-xdist workers."""

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Order the tests for parallel workers and keep each ``xdist_group`` on one worker."""
    run_slow_modules_first(items)
    if getattr(config.option, "loadgroup", False):  # inside a pytest-xdist worker under --dist loadgroup
        name_groups(items)


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
