"""pytest-benchmark suites: `python -m pytest bench/ --benchmark-only` (add
`--benchmark-group-by=group` for one table per case). The same cases as `tensorpress bench`."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.benchmark)
