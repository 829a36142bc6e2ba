"""What the service benchmarks share, by concern:

- `machine`: the machine a run measured on, and the CPU and memory its processes used;
- `databases`: a PostgreSQL database of the benchmarks' own, SQLite files;
- `processes`: the broker and the motcua services as real processes;
- `http`: a lean HTTP/1.1 client for the load generator;
- `dossiers`: the catalogue of procedures and realistic Vietnamese applicants;
- `load`: clerks posting dossiers, closed loop, and what they were answered;
- `ceiling`: the bare FastAPI endpoint every run measures as its yardstick;
- `report`: the README section each benchmark writes;
- `cli`: the command line and the end of a run.

The benchmarks run the services as the `motcua` command runs them (separate processes, a real
Kafka-protocol broker, real databases) and measure from outside, over HTTP. Every name is
importable from `bench.common` itself.
"""

from __future__ import annotations

# isort: off
# fmt: off
from bench.common.machine import (
    CLOCK_TICKS, CpuShares, CpuSnapshot, POSTGRES_SETTINGS, children, cpu_between, is_python,
    load_average, machine, postgres_info, postgres_pids, proc_status_kib, python_speed, rss_kib,
    started_by_up, versions_line,
)
from bench.common.databases import (
    CONNECT_TIMEOUT, DEFAULT_PG_URL, asyncpg_dsn, bench_database_name, chunks, count_rows,
    drop_database, ensure_database, fresh_postgres, fresh_sqlite, notice_statuses, reader_engine,
    sqlite_url, without_password,
)
from bench.common.processes import (
    MOTCUA, READY_TIMEOUT, ServiceProcess, poll, service_env, start_broker, start_services,
    stop_services,
)
from bench.common.http import (
    HttpConnection, IDLE_REUSE, bearer, get_once,
)
from bench.common.dossiers import (
    AGENCIES, Applicants, BODIES_PER_AGENCY, BODY_SEED, GIVEN, MIDDLE, MOBILE_PREFIXES,
    PROCEDURES, PROVINCE_CODES, ProcedureSpec, STREETS, SURNAMES, WARDS, bodies_by_agency,
    check_phones, create_tokens, e164_of, open_office, phone_of, set_up_catalogue,
)
from bench.common.load import (
    Answers, Clerk, LevelResult, REQUEST_TIMEOUT, TRANSPORT_ERRORS, close_clerks, drive,
    percentile, seat_clerks,
)
from bench.common.ceiling import (
    CEILING_CLERKS, CEILING_SECONDS, CEILING_WARM_UP, Ceiling, CeilingProcess, ceiling_method,
    measure_ceiling,
)
from bench.common.report import (
    README, README_HEAD, command_lines, date_line, load_line, machine_line, mib, ms,
    postgres_line, slug, write_section,
)
from bench.common.cli import (
    QUICK_CEILING_SECONDS, QUICK_CEILING_WARM_UP, arguments, ceiling_options, conclude, main,
    output_arguments, quiet_logs, work_folder,
)
# isort: on

__all__ = [
    "CLOCK_TICKS", "CpuShares", "CpuSnapshot", "POSTGRES_SETTINGS", "children", "cpu_between",
    "is_python", "load_average", "machine", "postgres_info", "postgres_pids", "proc_status_kib",
    "python_speed", "rss_kib", "started_by_up", "versions_line", "CONNECT_TIMEOUT",
    "DEFAULT_PG_URL", "asyncpg_dsn", "bench_database_name", "chunks", "count_rows", "drop_database",
    "ensure_database", "fresh_postgres", "fresh_sqlite", "notice_statuses", "reader_engine",
    "sqlite_url", "without_password", "MOTCUA", "READY_TIMEOUT", "ServiceProcess", "poll",
    "service_env", "start_broker", "start_services", "stop_services", "HttpConnection",
    "IDLE_REUSE", "bearer", "get_once", "AGENCIES", "Applicants", "BODIES_PER_AGENCY", "BODY_SEED",
    "GIVEN", "MIDDLE", "MOBILE_PREFIXES", "PROCEDURES", "PROVINCE_CODES", "ProcedureSpec",
    "STREETS", "SURNAMES", "WARDS", "bodies_by_agency", "check_phones", "create_tokens", "e164_of",
    "open_office", "phone_of", "set_up_catalogue", "Answers", "Clerk", "LevelResult",
    "REQUEST_TIMEOUT", "TRANSPORT_ERRORS", "close_clerks", "drive", "percentile", "seat_clerks",
    "CEILING_CLERKS", "CEILING_SECONDS", "CEILING_WARM_UP", "Ceiling", "CeilingProcess",
    "ceiling_method", "measure_ceiling", "README", "README_HEAD", "command_lines", "date_line",
    "load_line", "machine_line", "mib", "ms", "postgres_line", "slug", "write_section",
    "QUICK_CEILING_SECONDS", "QUICK_CEILING_WARM_UP", "arguments", "ceiling_options", "conclude",
    "main", "output_arguments", "quiet_logs", "work_folder",
]
# fmt: on
