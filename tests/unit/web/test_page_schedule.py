"""The status page shows the poll schedule's priority classes (header and JSON view)."""

from __future__ import annotations

from exporter.polling.snapshot import PriorityView, Snapshot
from exporter.web.page import PageContext, as_json, render

NOW = 1_800_000_000.0
SCHEDULE = (PriorityView("new", 0, None, None), PriorityView("hot", 6, 60.0, 42.0),
            PriorityView("active", 194, 240.0, 230.0), PriorityView("quiet", 1800, 855.0, 850.0))


def test_header_names_each_class_with_its_pairs_and_interval() -> None:
    page = " ".join(render(Snapshot(schedule=SCHEDULE), PageContext(), now=NOW).split())
    shown = "schedule: hot <b>6</b> every 1m 0s · active <b>194</b> every 4m 0s · quiet <b>1,800</b> every 14m 15s"
    assert shown in page
    assert "schedule:" not in render(Snapshot(), PageContext(), now=NOW)


def test_json_view_has_the_schedule() -> None:
    data = as_json(Snapshot(schedule=SCHEDULE), PageContext(), now=NOW)
    assert data["schedule"][1] == {"priority": "hot", "pairs": 6, "planned_interval_seconds": 60.0,
                                   "max_wait_seconds": 42.0}
    assert [c["priority"] for c in data["schedule"]] == ["new", "hot", "active", "quiet"]
