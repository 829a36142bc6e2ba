"""The ceiling for POST /dossiers on this machine: FastAPI and uvicorn as `motcua intake`
runs them (same interpreter, same uvicorn configuration), one endpoint that validates the
dossier body with the intake's own model and answers 201; no token, no database, no log
line. Every benchmark measures it at the start of its run (`bench.common.measure_ceiling`: the
intake benchmark's load generator and bodies) and reports its headline figure as a share of
this endpoint's requests/s: on a shared machine, the share is what compares across runs.

    .venv/bin/python -m bench.ceiling_app --port 8000
"""

from __future__ import annotations

import argparse
from typing import Any

from fastapi import FastAPI

from services.cli import _serve
from services.intake.api.models import DossierIn

app = FastAPI()


@app.post("/dossiers", status_code=201)
async def receive(body: DossierIn) -> dict[str, Any]:
    return {"procedure_code": body.procedure_code, "channel": body.channel}


@app.get("/readyz")
async def ready() -> dict[str, bool]:
    return {"ready": True}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    _serve(app, args.host, args.port)


if __name__ == "__main__":
    main()
