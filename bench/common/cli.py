"""The command line every benchmark shares: `python -m bench.<name>` with `--database-url`,
`--readme`, `--no-readme`, `--keep`, `--quick`'s short ceiling, a work folder, and the end of a
run (problems printed, the section written, the exit status).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog

from bench.common.ceiling import CEILING_SECONDS, CEILING_WARM_UP
from bench.common.databases import DEFAULT_PG_URL, without_password
from bench.common.machine import machine
from bench.common.report import README, write_section


def quiet_logs() -> None:
    """The benchmark's own process logs warnings only: its output is its figures."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


QUICK_CEILING_SECONDS = 2.0  # --quick: the ceiling measured for this long


QUICK_CEILING_WARM_UP = 0.5


def arguments(name: str, doc: str) -> argparse.ArgumentParser:
    """A benchmark's parser: `python -m bench.<name>`, the first paragraph of its docstring,
    and `--database-url`."""
    parser = argparse.ArgumentParser(
        prog=f"python -m bench.{name}", description=doc.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default=DEFAULT_PG_URL)
    return parser


def output_arguments(parser: argparse.ArgumentParser, keep: str = "") -> None:
    """`--readme`, `--no-readme` and, when a run leaves files (`keep`: which), `--keep`."""
    parser.add_argument("--readme", type=Path, default=README, help="where the figures go")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    if keep:
        parser.add_argument("--keep", action="store_true", help=f"keep the {keep}")


def ceiling_options(quick: bool) -> dict[str, float]:
    """The ceiling's `ceiling_seconds` and `ceiling_warm_up`, shorter for `--quick`."""
    return {
        "ceiling_seconds": QUICK_CEILING_SECONDS if quick else CEILING_SECONDS,
        "ceiling_warm_up": QUICK_CEILING_WARM_UP if quick else CEILING_WARM_UP,
    }


@contextlib.contextmanager
def work_folder(name: str, keep: bool, kept: str) -> Iterator[Path]:
    """A new temporary folder for a run's logs and files: removed after it, unless `keep`."""
    folder = Path(tempfile.mkdtemp(prefix=f"motcua-bench-{name}-"))
    try:
        yield folder
    finally:
        if keep:
            print(f"{kept} kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def conclude(
    args: argparse.Namespace, name: str, row: str, found: Sequence[str],
    section: Callable[[dict[str, str]], str],
) -> int:  # fmt: skip
    """Print the problems, write the section (`section(machine())`) unless `--no-readme`;
    the exit status: 1 when a problem was found."""
    for problem in found:
        print("PROBLEM:", problem)
    if not args.no_readme:
        write_section(args.readme, name, section(machine()), row)
        print(f"\nFigures written to {args.readme}")
    return 1 if found else 0


def main(
    name: str,
    argv: Sequence[str] | None,
    parse_args: Callable[[Sequence[str] | None], argparse.Namespace],
    main_async: Callable[[argparse.Namespace, str], Coroutine[Any, Any, int]],
) -> int:
    """Parse, quieten the logs, and run `main_async(args, command)`, `command` being the
    command line as the section shows it (passwords hidden)."""
    args = parse_args(argv)
    shown = [without_password(a) for a in (sys.argv[1:] if argv is None else argv)]
    command = shlex.join([".venv/bin/python", "-m", f"bench.{name}", *shown])
    quiet_logs()
    return asyncio.run(main_async(args, command))
