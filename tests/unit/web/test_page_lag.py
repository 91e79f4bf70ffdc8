"""The worst groups' catch-up ETA, retention margin and last-hour sparkline, on the page and in the JSON view."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from types import MappingProxyType

from exporter.polling.analysis import Insight
from exporter.polling.history import EMPTY, LagHistory, LagSeries
from exporter.polling.rates import GroupRates
from exporter.polling.snapshot import PairState
from exporter.targets.pair import Pair
from exporter.web.page import PageContext, as_json, content_security_policy, render, sparkline
from tests.support.fakes import progress
from tests.unit.web.test_page import HOSTILE, NOW, Tables, snapshot_of

INST = "alikafka_post-cn-spark"
COLUMNS = ["Instance", "Group", "Lag (messages)", "Time lag", "Status", "Members", "Catch-up ETA",
           "Retention margin", "Last hour"]


class Svgs(HTMLParser):
    """The attributes of every svg, title and polyline element, in order, and each title's text."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.titles: list[str] = []
        self._in_title = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("svg", "polyline", "title"):
            self.elements.append((tag, dict(attrs)))
        self._in_title = tag == "title" and bool(self.elements) and len(self.elements) > 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.titles.append(data)

    def of(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements if name == tag]


def series(*points: tuple[float, float]) -> LagSeries:
    history = LagHistory()
    result = history.observe(("i", "g"), *points[0])
    for at, seconds in points[1:]:
        result = history.observe(("i", "g"), at, seconds)
    return result


def group(name: str, time_lag: float, *, catch_up: float | None = None, margin: float | None = None,
          history: LagSeries = EMPTY) -> PairState:
    data = progress({"t": {0: (2000, 1000)}})
    rates = GroupRates(catch_up=catch_up) if catch_up is not None else None
    insight = Insight(MappingProxyType({("t", 0): time_lag}), "lagging", rates, retention_margin=margin,
                      history=history)
    return PairState(Pair(INST, name, "cn-hangzhou"), data, True, NOW - 5, NOW - 5, None, 4, insight)


def test_worst_groups_show_eta_margin_and_a_sparkline_columns() -> None:
    hour = series((NOW - 3600, 0.0), (NOW - 1800, 50.0), (NOW, 100.0))
    snap = snapshot_of(group("draining", 100.0, catch_up=125.0, margin=3 * 3600 + 30, history=hour),
                       group("unknown", 40.0))
    page = Tables(render(snap, PageContext(), now=NOW))
    assert page.tables["worst"][0] == COLUMNS
    rows = {row[1]: row for row in page.body_rows("worst")}
    assert rows["draining"][6:8] == ["2m 5s", "3h 0m"]
    assert rows["draining"][8] == "time lag over the last hour: 0s to 1m 40s, latest 1m 40s"  # the svg's title
    assert rows["unknown"][6:] == ["-", "-", "-"]  # absent values as the page shows them elsewhere


def test_the_sparkline_draws_each_point_of_the_hour_with_its_range_as_title() -> None:
    svg = Svgs(sparkline(((NOW - 7200, 999.0), (NOW - 3600, 0.0), (NOW - 1800, 50.0), (NOW, 100.0)), NOW))
    (attrs,) = svg.of("svg")
    label = "time lag over the last hour: 0s to 1m 40s, latest 1m 40s"
    assert attrs["role"] == "img" and attrs["aria-label"] == label
    assert svg.titles == [label]
    (line,) = svg.of("polyline")
    assert line["points"] == "2.0,22.0 60.0,12.0 118.0,2.0"  # older than the hour: not drawn; 0 at the bottom
    assert line["fill"] == "none" and line["stroke"] == "currentColor"


def test_a_flat_or_single_point_sparkline_still_draws_and_none_is_a_dash() -> None:
    flat = Svgs(sparkline(((NOW - 60, 0.0), (NOW, 0.0)), NOW))
    assert flat.of("polyline")[0]["points"] == "116.1,22.0 118.0,22.0"
    single = Svgs(sparkline(((NOW, 42.0),), NOW))
    assert single.of("polyline")[0]["points"] == "118.0,2.0 118.0,2.0"
    assert single.of("polyline")[0]["stroke-linecap"] == "round"  # a lone point shows as a dot
    assert sparkline((), NOW) == "-"
    assert sparkline(((NOW - 4000, 1.0),), NOW) == "-"


def test_hostile_group_names_stay_text_next_to_a_sparkline() -> None:
    hour = series((NOW - 60, 5.0), (NOW, 6.0))
    page = render(snapshot_of(group(HOSTILE, 6.0, history=hour)), PageContext(), now=NOW)
    tables = Tables(page)
    assert "script" not in tables.tags
    assert tables.body_rows("worst")[0][1] == HOSTILE
    assert len(Svgs(page).of("polyline")) == 1


def test_the_content_security_policy_still_holds() -> None:
    """The one style sheet matches the policy's hash; no style attribute, script or external reference is used."""
    hour = series((NOW - 600, 5.0), (NOW, 6.0))
    page = render(snapshot_of(group("g", 6.0, history=hour)), PageContext(), now=NOW)
    (css,) = re.findall(r"<style>(.*?)</style>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in content_security_policy()
    assert content_security_policy().startswith("default-src 'none';")
    assert " style=" not in page and "<script" not in page and "href=\"http" not in page
    assert "xlink" not in page and "<use" not in page and "<image" not in page


def test_json_view_has_eta_margin_and_history() -> None:
    hour = series((NOW - 600, 5.0), (NOW - 300, 7.0), (NOW, 9.0))
    data = as_json(snapshot_of(group("g", 9.0, catch_up=0.0, margin=100.0, history=hour), group("h", 1.0)),
                   PageContext(), now=NOW)
    worst = {g["group"]: g for g in data["worst_groups"]}
    assert worst["g"]["catch_up_seconds"] == 0.0 and worst["g"]["retention_margin_seconds"] == 100.0
    assert worst["g"]["time_lag_history"] == [[NOW - 600, 5.0], [NOW - 300, 7.0], [NOW, 9.0]]
    assert worst["h"]["catch_up_seconds"] is None and worst["h"]["retention_margin_seconds"] is None
    assert worst["h"]["time_lag_history"] == []
