"""The status page module: header facts, target order and cap, worst groups, escaping, cost."""

from __future__ import annotations

import time
from dataclasses import replace
from html.parser import HTMLParser
from types import MappingProxyType

import pytest

from exporter.polling.analysis import Insight
from exporter.polling.snapshot import AccountSchedule, PairState, PollError, Snapshot
from exporter.targets.pair import Pair
from exporter.web.page import PageContext, as_json, duration, render, utc
from tests.support.fakes import progress

NOW = 1_800_000_000.0
HOSTILE = "<script>alert('x')</script>&amp;\"q\""


class Tables(HTMLParser):
    """Text of every cell of every table with an id, and the tags seen."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: list[str] = []
        self.text: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def body_rows(self, table: str) -> list[list[str]]:
        return [row for row in self.tables[table][1:] if row]


def ok(pair: Pair, lag: int, time_lag: float | None, status: str = "ok", members: int = 2) -> PairState:
    offsets = {p: (1000 + (lag if p == 0 else 0), 1000) for p in range(max(1, members))}
    data = progress({"t": offsets}, members=tuple(f"m{i}" for i in range(members)))
    lags = {("t", 0): time_lag} if time_lag is not None else {}
    return PairState(pair, data, True, NOW - 5, NOW - 5, None, 3, Insight(MappingProxyType(lags), status))


def snapshot_of(*states: PairState, **extra: object) -> Snapshot:
    return Snapshot(MappingProxyType({s.pair: s for s in states}), 1, **extra)  # type: ignore[arg-type]


def fleet() -> Snapshot:
    inst = "alikafka_post-cn-a"
    err = PollError("BIZ_SUBSCRIPTION_NOT_FOUND", "group <b>ghost</b> does not exist", "not_found", "RID-<7>")
    throttled = PollError("Throttling.User", "Request was denied due to user flow control.", "throttled", None)
    return snapshot_of(
        ok(Pair(inst, "fast", "cn-hangzhou"), 0, 0.0),
        ok(Pair(inst, "slow", "cn-hangzhou"), 500, 192.0, "lagging", 4),
        ok(Pair(inst, "slower", "cn-hangzhou"), 10, 7400.0, "stalled", 1),
        ok(Pair(inst, "many", "cn-hangzhou"), 90_000, 30.0, "ok", 3),
        ok(Pair(inst, HOSTILE, "cn-hangzhou"), 7, 12.0, "lagging"),
        PairState(Pair(inst, "ghost", "cn-hangzhou"), None, False, NOW - 61, None, err, 2),
        PairState(Pair("alikafka_post-cn-b", "billing", "cn-shanghai"), progress({"t": {0: (9, 1)}}), False,
                  NOW - 3, NOW - 3700, throttled, 9, Insight(MappingProxyType({("t", 0): 3.0}), "unknown")),
        PairState(Pair("alikafka_post-cn-b", "new", "cn-shanghai")),
        effective_interval=75.0, cycle_duration=12.5, interval=60.0,
    )


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (0, "0s"), (0.42, "0.4s"), (45, "45s"), (59.6, "1m 0s"), (192, "3m 12s"), (3600, "1h 0m"),
    (7530, "2h 5m"), (273_600, "3d 4h"), (-3, "0s"),
])
def test_duration_is_short_and_human(seconds: float | None, text: str) -> None:
    """Durations read like 3m 12s, never as a raw float."""
    assert duration(seconds) == text


def test_targets_problems_first_with_errors_and_times() -> None:
    """Failing, stale, pending, then ok; each row has state, relative and UTC times, error and RequestId."""
    page = Tables(render(fleet(), PageContext(), now=NOW))
    rows = page.body_rows("targets")
    assert [(r[1], r[3]) for r in rows] == [
        ("billing", "failing"), ("ghost", "stale"), ("new", "pending"),
        (HOSTILE, "ok"), ("fast", "ok"), ("many", "ok"), ("slow", "ok"), ("slower", "ok")]
    billing, ghost, new = rows[0], rows[1], rows[2]
    assert billing[0] == "alikafka_post-cn-b" and billing[2] == "cn-shanghai"
    assert billing[4] == f"3s ago | {utc(NOW - 3)}" and billing[5] == f"1h 1m ago | {utc(NOW - 3700)}"
    assert billing[6] == "Throttling.User Request was denied due to user flow control."
    assert ghost[5] == "never"
    assert ghost[6] == "BIZ_SUBSCRIPTION_NOT_FOUND group <b>ghost</b> does not exist | RequestId RID-<7>"
    assert new[4] == "never" and new[6] == ""
    raw = render(fleet(), PageContext(), now=NOW)
    assert "&lt;b&gt;ghost" in raw and "<b>ghost" not in raw  # the API's message is text, not markup


def test_hostile_names_are_text_not_markup() -> None:
    """Group names are user data: a <script> name shows as text and adds no element."""
    html = render(fleet(), PageContext(), now=NOW)
    page = Tables(html)
    assert "script" not in page.tags
    assert "<script>" not in html
    assert any(HOSTILE in row[1] for row in page.body_rows("targets"))
    assert any(row[1] == HOSTILE for row in page.body_rows("worst"))
    data = as_json(fleet(), PageContext(), now=NOW)
    assert HOSTILE in {t["group"] for t in data["targets"]}


def test_worst_groups_by_time_lag_then_messages() -> None:
    """Ordered by time lag, then message lag; caught-up ok groups are left out; members and status shown."""
    page = Tables(render(fleet(), PageContext(), now=NOW))
    rows = page.body_rows("worst")
    assert [r[1] for r in rows] == ["slower", "slow", "many", HOSTILE, "billing"]
    assert rows[0][2:6] == ["10", "2h 3m", "stalled", "1"]
    assert rows[1][2:6] == ["500", "3m 12s", "lagging", "4"]
    assert rows[2][2] == "90,000"
    assert "fast" not in {r[1] for r in rows}
    capped = Tables(render(fleet(), PageContext(top_groups=2), now=NOW))
    assert [r[1] for r in capped.body_rows("worst")] == ["slower", "slow"]


def test_header_facts_and_demo_banner() -> None:
    """Version, uptime, configured and effective interval, counts; the demo banner only in demo mode."""
    options = PageContext(version="1.2.3", demo=True, started=NOW - 3725)
    page = render(fleet(), options, now=NOW)
    text = "".join(Tables(page).text)
    for fact in ("version 1.2.3", "uptime 1h 2m", "poll interval 1m 0s (effective 1m 15s)", "last cycle 12s",
                 "targets 8: ok 5 · failing 1 · stale 1 · pending 1", "all data is simulated"):
        assert fact in " ".join(text.split()), fact
    assert "simulated" not in render(fleet(), PageContext(), now=NOW)
    discovering = render(Snapshot(discovering=True), PageContext(), now=NOW)
    assert "Listing instances" in discovering and "no targets yet" in discovering


def test_page_is_self_contained() -> None:
    """No script, no external stylesheet, image or font: inline CSS with a dark scheme."""
    page = render(fleet(), PageContext(), now=NOW)
    tags = set(Tables(page).tags)
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert "prefers-color-scheme:dark" in page
    assert "http://" not in page and "https://" not in page and "url(" not in page


def test_big_fleet_is_capped_and_counted() -> None:
    """Past max_rows the table says how many targets are not shown; the JSON view has them all."""
    states = [ok(Pair("alikafka_post-cn-a", f"g{n:03}", "cn-hangzhou"), n, float(n)) for n in range(40)]
    snap = snapshot_of(*states)
    page = Tables(render(snap, PageContext(max_rows=10), now=NOW))
    rows = page.body_rows("targets")
    assert len(rows) == 11
    assert rows[-1] == ["… and 30 more targets not shown (30 of them ok); the full list is in the JSON view"]
    assert len(as_json(snap, PageContext(max_rows=10), now=NOW)["targets"]) == 40


def test_json_view_has_the_same_facts() -> None:
    """The JSON view: counts, intervals, every target with its error, worst groups in page order."""
    data = as_json(fleet(), PageContext(version="9", started=NOW - 10), now=NOW)
    assert data["counts"] == {"ok": 5, "failing": 1, "stale": 1}
    assert data["uptime_seconds"] == 10 and data["effective_poll_interval_seconds"] == 75.0
    ghost = next(t for t in data["targets"] if t["group"] == "ghost")
    assert ghost["state"] == "stale"
    assert ghost["error"] == {"code": "BIZ_SUBSCRIPTION_NOT_FOUND", "message": "group <b>ghost</b> does not exist",
                              "request_id": "RID-<7>"}
    assert [g["group"] for g in data["worst_groups"]][:2] == ["slower", "slow"]


def test_rendering_two_thousand_pairs_is_cheap() -> None:
    """2,000 pairs (some failing) render well under a scrape's budget; the number goes in the docs."""
    states = []
    for n in range(2000):
        pair = Pair(f"alikafka_post-cn-{n % 7}", f"group-{n:04}", "cn-hangzhou")
        if n % 50 == 0:
            err = PollError("Throttling.User", "denied", "throttled", f"RID-{n}")
            states.append(PairState(pair, None, False, NOW - 1, None, err, 1))
        else:
            states.append(ok(pair, n, n * 1.5, "lagging" if n % 3 else "ok"))
    snap = snapshot_of(*states)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        page = render(snap, PageContext(), now=NOW)
        best = min(best, time.perf_counter() - started)
    print(f"status page, 2000 pairs: {best * 1000:.1f} ms, {len(page) / 1024:.0f} KiB")
    assert len(Tables(page).body_rows("targets")) == 501
    assert best < 0.5


def test_header_follows_a_reloaded_poll_interval() -> None:
    """After a reload the poller's snapshot carries the new interval, and the page shows what it carries."""
    snap = Snapshot(MappingProxyType({}), 3, None, 30.0, False, 30.0)
    options = PageContext(version="1")
    assert "poll interval <b>30s</b>" in render(snap, options, now=NOW)
    assert as_json(snap, options, now=NOW)["poll_interval_seconds"] == 30.0


def test_each_accounts_credential_source_is_shown_escaped() -> None:
    """One default account: a header fact; several: a table of name and source; JSON has both, and each
    target's account."""
    single = render(fleet(), PageContext(accounts=(("default", "files (/etc/a/id, /etc/a/secret)"),)), now=NOW)
    assert "credentials files (/etc/a/id, /etc/a/secret)" in " ".join("".join(Tables(single).text).split())
    assert "accounts" not in Tables(single).tables
    many = (("default", "rrsa (role acs:ram::1:role/lag, ...)"), ("prod", f"files ({HOSTILE})"))
    page = Tables(render(fleet(), PageContext(accounts=many), now=NOW))
    assert page.body_rows("accounts") == [["default", many[0][1]], ["prod", f"files ({HOSTILE})"]]
    data = as_json(fleet(), PageContext(accounts=many), now=NOW)
    assert data["accounts"] == [{"name": "default", "credentials": many[0][1]},
                                {"name": "prod", "credentials": many[1][1]}]
    assert {t["account"] for t in data["targets"]} == {"default"}


def test_each_accounts_schedule_is_shown_with_several_accounts() -> None:
    """Each account's budget schedules its own pairs: its pairs, effective interval and last cycle, in the table
    and in the JSON; the header's figures are the longest (the board combined them)."""
    snap = replace(fleet(), effective_interval=700.0, interval=60.0,
                   accounts=(AccountSchedule("prod", 2000, 700.0, 690.0), AccountSchedule("staging", 100, 60.0, 34.0)))
    many = (("prod", "files (/p)"), ("staging", "files (/s)"))
    page = Tables(render(snap, PageContext(accounts=many), now=NOW))
    assert page.body_rows("accounts") == [["prod", "files (/p)", "2,000", "11m 40s", "11m 30s"],
                                          ["staging", "files (/s)", "100", "1m 0s", "34s"]]
    data = as_json(snap, PageContext(accounts=many), now=NOW)
    assert data["accounts"][1] == {"name": "staging", "credentials": "files (/s)", "pairs": 100,
                                   "effective_poll_interval_seconds": 60.0, "cycle_duration_seconds": 34.0}
    assert data["effective_poll_interval_seconds"] == 700.0
