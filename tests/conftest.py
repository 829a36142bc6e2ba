pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.broker",
    "tests.fixtures.intake",
    "tests.fixtures.tracker",
    "tests.fixtures.gateways",
    "tests.fixtures.notifier",
]
