pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.broker",
    "tests.fixtures.intake",
    "tests.fixtures.tracker",
    "tests.fixtures.gateways",
    "tests.fixtures.notifier",
]


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """The fault tests' ledgers, as figures for the README's "Resilience" section."""
    from tests.fixtures.faults import FIGURES

    if FIGURES:
        terminalreporter.section("fault ledgers")
        for ledger in FIGURES:
            terminalreporter.write_line(ledger.line())
