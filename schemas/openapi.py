"""The HTTP contract: the OpenAPI document of every route `motcua up` serves, from the code.

``python -m schemas.generate`` writes it to ``docs/openapi.json`` with the event schemas, and
``tests/unit/test_schemas.py`` fails when it is stale. It is what a running motcua serves at
``/openapi.json``: the intake's API, the notifier's callbacks and the host's own routes.
"""

from __future__ import annotations

import json
import tempfile
from importlib import import_module
from pathlib import Path
from typing import Any

#: The services `motcua up` hosts, in its order (services/cli.py), as module and class.
SERVICES = (
    ("services.intake.app", "IntakeService"),
    ("services.tracker.app", "TrackerService"),
    ("services.notifier.app", "NotifierService"),
)


def _load(module: str, name: str) -> Any:
    # By name: the services' modules are outside mypy's strict scope (pyproject.toml), and an
    # import statement would pull them into it.
    return getattr(import_module(module), name)


def openapi_document() -> dict[str, Any]:
    """The document of the app `motcua up` builds from the three services.

    Built with the settings' defaults, whatever the environment says (nothing in the routes
    depends on a setting), and without starting anything: no database is opened, no broker
    reached."""
    build_app = _load("services.core.runtime.host", "build_app")
    settings_class = _load("services.core.runtime.settings", "Settings")
    with tempfile.TemporaryDirectory() as data_dir:
        settings = settings_class.model_construct(data_dir=Path(data_dir))
        services = [
            _load(module, name)(settings, kafka_bootstrap="localhost:9092")
            for module, name in SERVICES
        ]
        document: dict[str, Any] = build_app(services).openapi()
    return document


def render_openapi(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
