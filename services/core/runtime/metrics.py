"""Prometheus metrics: one registry per service, exposed by the host at `GET /metrics`.

A service object owns its registry, so the three services of `motcua up` and the many apps a
test run builds never register a name twice or share a number; the host stamps
`service="<name>"` on every series of a service when it exposes them.

What lives in a table or a consumer (outbox backlog, notices by status, consumer lag) is read
when Prometheus scrapes, each read within `READ_SECONDS`: a database that does not answer
delays the scrape no longer than that, its series are left out, and
`motcua_scrape_source_up{source}` is 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

READ_SECONDS = 2.0
Values = Mapping[tuple[str, ...], float]
Read = Callable[[], Awaitable[Values]]

# One series per counter and histogram: `_created` says nothing an alert needs.
disable_created_metrics()

log = structlog.get_logger(__name__)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "READ_SECONDS",
    "Read",
    "ServiceMetrics",
    "Values",
    "exposition",
]


@dataclass
class _Source:
    name: str
    metric: str
    documentation: str
    labels: Sequence[str]
    read: Read
    values: Values = field(default_factory=dict)
    up: bool = False


class ServiceMetrics:
    """The metrics of one service: counters and histograms its code moves, and gauges read
    at scrape time. Asking again for a name gives the same metric: a service started again
    after a stop subscribes again, and a registry refuses a name registered twice."""

    def __init__(self, read_seconds: float = READ_SECONDS) -> None:
        self.registry = CollectorRegistry()
        self._read_seconds = read_seconds
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        self._sources: dict[str, _Source] = {}
        self.registry.register(_ReadAtScrape(self._sources))

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        if name not in self._counters:
            self._counters[name] = Counter(name, documentation, labels, registry=self.registry)
        return self._counters[name]

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:
        if name not in self._histograms:
            self._histograms[name] = Histogram(
                name, documentation, labels, registry=self.registry, buckets=buckets
            )
        return self._histograms[name]

    def gauge_at_scrape(
        self, source: str, name: str, documentation: str, labels: Sequence[str], read: Read
    ) -> None:
        """A gauge whose series `read()` gives (label values → value) before each scrape;
        a second call for the same source replaces the first."""
        self._sources[source] = _Source(source, name, documentation, tuple(labels), read)

    async def refresh(self) -> None:
        """Read every scrape-time gauge, all at once, each within the time bound."""
        await asyncio.gather(*(self._read(source) for source in self._sources.values()))

    async def _read(self, source: _Source) -> None:
        try:
            async with asyncio.timeout(self._read_seconds):
                values = dict(await source.read())
        except Exception as exc:  # a scrape reports what it can
            source.values, source.up = {}, False
            log.warning("metrics_source_unread", source=source.name, error_class=type(exc).__name__)
            return
        source.values, source.up = values, True


class _ReadAtScrape:
    def __init__(self, sources: dict[str, _Source]) -> None:
        self._sources = sources

    def collect(self) -> Iterable[Metric]:
        if not self._sources:
            return
        up = GaugeMetricFamily(
            "motcua_scrape_source_up",
            "1 when the source was read in time at this scrape; 0: its series are left out",
            labels=["source"],
        )
        for source in self._sources.values():
            up.add_metric([source.name], 1.0 if source.up else 0.0)
            family = GaugeMetricFamily(source.metric, source.documentation, labels=source.labels)
            for labels, value in source.values.items():
                family.add_metric(list(labels), value)
            yield family
        yield up


def exposition(host: CollectorRegistry, services: Mapping[str, CollectorRegistry]) -> bytes:
    """The text format of the host's registry and every service's, each service's series
    stamped with `service="<name>"`, a name shared by several services exposed once."""
    return generate_latest(_Merged(host, services))


class _Merged:
    def __init__(self, host: CollectorRegistry, services: Mapping[str, CollectorRegistry]) -> None:
        self._parts: list[tuple[str | None, CollectorRegistry]] = [(None, host)]
        self._parts.extend(services.items())

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for service, registry in self._parts:
            for family in registry.collect():
                into = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                into.samples.extend(_stamped(family.samples, service))
        return merged.values()


def _stamped(samples: Iterable[Sample], service: str | None) -> Iterable[Sample]:
    if service is None:
        return samples
    return [s._replace(labels={"service": service, **s.labels}) for s in samples]
