pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.broker",
    "tests.fixtures.intake",
    "tests.fixtures.tracker",
    "tests.fixtures.gateways",
    "tests.fixtures.notifier",
]


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    """Services built in this process read the tests' consumer settings from the environment
    (a developer's own MOTCUA_ setting wins)."""
    import os

    from tests.fixtures.broker import consumer_env

    for key, value in consumer_env().items():
        os.environ.setdefault(key, value)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """The fault tests' ledgers, as figures for the README's "Resilience" section."""
    from tests.fixtures.faults import FIGURES

    if FIGURES:
        terminalreporter.section("fault ledgers")
        for ledger in FIGURES:
            terminalreporter.write_line(ledger.line())
