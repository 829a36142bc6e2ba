import pytest

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.broker",
    "tests.fixtures.intake",
    "tests.fixtures.tracker",
    "tests.fixtures.gateways",
    "tests.fixtures.esms",
    "tests.fixtures.viettelpost",
    "tests.fixtures.notifier",
    "tests.fixtures.browser",
]


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    """Services built in this process read the tests' consumer settings from the environment
    (a developer's own MOTCUA_ setting wins)."""
    import os

    from tests.fixtures.broker import consumer_env

    for key, value in consumer_env().items():
        os.environ.setdefault(key, value)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault tests first, then the other end-to-end tests, then the rest (each group in
    its usual order): they take minutes each, so under pytest-xdist (tests handed out in
    collection order, round robin) they start at once on different workers instead of
    leaving one of them busy at the end."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("faults"):
            return 0
        return 1 if item.nodeid.startswith("tests/e2e/") else 2

    items.sort(key=rank)  # stable: each group keeps its order


# The fault tests' ledgers travel on their test reports (user_properties), so that the run's
# summary has them also when the tests ran in pytest-xdist workers.
LEDGER_PROPERTY = "fault_ledger"
_attached = 0  # FIGURES of this process already put on a report
_ledger_lines: list[str] = []  # every ledger of the run, as reported


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    global _attached
    from tests.fixtures.faults import FIGURES

    for ledger in FIGURES[_attached:]:  # before the report is made: it copies them
        item.user_properties.append((LEDGER_PROPERTY, ledger.line()))
    _attached = len(FIGURES)
    yield


def pytest_runtest_logreport(report) -> None:  # type: ignore[no-untyped-def]
    if report.when == "teardown":  # a test's reports share its properties: read them once
        _ledger_lines.extend(v for k, v in report.user_properties if k == LEDGER_PROPERTY)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """The fault tests' ledgers, as figures for docs/operations.md, "Resilience"."""
    if _ledger_lines:
        terminalreporter.section("fault ledgers")
        for line in _ledger_lines:
            terminalreporter.write_line(line)
