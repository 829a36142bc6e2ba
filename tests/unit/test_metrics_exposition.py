"""Several services in one exposition: a name they share is one family, each series stamped
with its service; the host's own series keep their labels; a read that fails is left out."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from services.core.runtime.metrics import ServiceMetrics, Values, exposition


def parsed(body: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {
        family.name: [(s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(body.decode())
    }


async def test_a_shared_name_is_one_family_with_a_series_per_service() -> None:
    tracker, notifier = ServiceMetrics(), ServiceMetrics()
    tracker.counter("motcua_things_total", "things", ["topic"]).labels("a").inc(2)
    notifier.counter("motcua_things_total", "things", ["topic"]).labels("a").inc(3)
    host = CollectorRegistry()
    Counter("motcua_requests_total", "requests", ["service"], registry=host).labels("x").inc()

    services = {"tracker": tracker.registry, "notifier": notifier.registry}
    families = parsed(exposition(host, services))

    assert families["motcua_things"] == [
        ({"service": "tracker", "topic": "a"}, 2.0),
        ({"service": "notifier", "topic": "a"}, 3.0),
    ]
    assert families["motcua_requests"] == [({"service": "x"}, 1.0)]


async def test_a_gauge_read_at_scrape_shows_what_was_read_and_nothing_when_the_read_fails() -> None:
    metrics = ServiceMetrics()
    answers: list[Values | Exception] = [{("failed",): 4.0}, RuntimeError("database away")]

    async def read() -> Values:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    metrics.gauge_at_scrape("notices", "motcua_notices", "notices", ["status"], read)

    await metrics.refresh()
    families = parsed(exposition(CollectorRegistry(), {"notifier": metrics.registry}))
    assert families["motcua_notices"] == [({"service": "notifier", "status": "failed"}, 4.0)]
    assert families["motcua_scrape_source_up"] == [
        ({"service": "notifier", "source": "notices"}, 1.0)
    ]

    await metrics.refresh()
    families = parsed(exposition(CollectorRegistry(), {"notifier": metrics.registry}))
    assert families["motcua_notices"] == []
    assert families["motcua_scrape_source_up"] == [
        ({"service": "notifier", "source": "notices"}, 0.0)
    ]


def test_asking_again_for_a_metric_gives_the_same_one() -> None:
    metrics = ServiceMetrics()
    first = metrics.counter("motcua_things_total", "things", ["topic"])
    assert metrics.counter("motcua_things_total", "things", ["topic"]) is first
    histogram = metrics.histogram("motcua_scan_duration_seconds", "scan")
    assert metrics.histogram("motcua_scan_duration_seconds", "scan") is histogram
