"""The dashboard's words and chart (services.intake.web.dashboard_view): pure."""

from __future__ import annotations

from datetime import datetime

from services.core.domain.calendar import VN_TZ, OfficeSchedule
from services.core.holidays_vn import vietnam_calendar
from services.intake.adapters.read_model import FlaggedDossier
from services.intake.adapters.reports import Counts, OnTimeReport, ReportRow
from services.intake.web.dashboard_view import (
    CHART_WIDTH,
    RATE_ROOM,
    due_soon_rows,
    on_time_chart,
    overdue_rows,
    rate_text,
)


def test_rates_are_written_as_vietnamese_writes_them() -> None:
    assert rate_text(0.8571) == "85,7 %"
    assert rate_text(1.0) == "100 %"
    assert rate_text(0.0) == "0 %"
    assert rate_text(None) == "chưa có hồ sơ hoàn thành"


def test_a_bar_is_as_long_as_its_rate_and_a_long_name_is_cut() -> None:
    name = "Cấp giấy chứng nhận quyền sử dụng đất, quyền sở hữu nhà ở và tài sản khác"
    rows = [
        ReportRow("A", "P1", name, Counts(finished_early=3, finished_late=1)),
        ReportRow("A", "P2", None, Counts(received=2)),
    ]
    totals = Counts(finished_early=3, finished_late=1, received=2)
    chart = on_time_chart(OnTimeReport(rows, totals))
    first, second = chart.bars
    assert first.width == round((CHART_WIDTH - RATE_ROOM) * 0.75, 1)
    assert first.detail == "3/4 hồ sơ đúng hạn" and first.rate_text == "75 %"
    assert first.name == name and first.label.endswith("…") and len(first.label) == 44
    assert second.label == "P2" and second.width == 0 and second.detail == ""
    assert (first.y, second.y) == (0, 46) and chart.height == 92
    assert chart.total_text == "75 %"


def test_how_late_and_how_soon_count_working_time_only() -> None:
    calendar = vietnam_calendar(OfficeSchedule.default(), ())
    friday_4pm = datetime(2026, 11, 20, 16, 0, tzinfo=VN_TZ)
    monday_10am = datetime(2026, 11, 23, 10, 0, tzinfo=VN_TZ)
    late = FlaggedDossier("A-1", "A", "P1", "Khai sinh", "in_progress", friday_4pm)
    soon = FlaggedDossier("A-2", "A", "P1", None, "in_progress", monday_10am)
    now = datetime(2026, 11, 23, 9, 0, tzinfo=VN_TZ)  # the weekend does not count
    (row,) = overdue_rows([late], {"A": calendar}, now)
    assert row.how == "trễ 2 giờ" and row.due_at == "16:00 20/11/2026"
    (row,) = due_soon_rows([soon], {"A": calendar}, now)
    assert row.how == "còn 1 giờ" and row.procedure == "P1"
    stopped = FlaggedDossier("A-3", "A", "P1", None, "paused", None)
    assert overdue_rows([stopped], {"A": calendar}, now) == []
