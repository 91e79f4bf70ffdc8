"""The status page at ``/``: what an operator opens first when a lag alert fires.

It renders one immutable :class:`~exporter.polling.snapshot.Snapshot`, never the API, so it costs the same
whether the cloud answers or not. It is one self-contained HTML document (inline CSS and SVG, no script, no
external asset) that works offline and under a strict content security policy; every outside value is
escaped. Problems sort first, big fleets stay cheap (docs/status-page.md); :func:`as_json` is for scripts.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import html
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from exporter.polling.snapshot import PairState, Snapshot

# Problems first: an operator looks for what is broken, then for what is fine.
_STATE_ORDER = {"failing": 0, "stale": 1, "pending": 2, "ok": 3}


@dataclass(frozen=True, slots=True)
class PageContext:
    """What the page shows besides the snapshot: runtime values and the page's own bounds, no settings."""

    version: str = "0"
    demo: bool = False
    links: tuple[tuple[str, str], ...] = ()  # the navigation bar, (label, href): web.py knows the routes
    started: float | None = None  # process start, epoch seconds (for the uptime)
    max_rows: int = 500  # target rows shown; the rest are counted
    top_groups: int = 15  # rows of the worst-groups table
    # Each account's name and credential source (file paths, role ARNs, endpoints: never a secret).
    accounts: tuple[tuple[str, str], ...] = ()


@cache
def content_security_policy() -> str:
    """The page's Content-Security-Policy: its one inline style sheet (by hash) and nothing else.

    No script, image, font, frame or form target may load; the page may not be framed
    (``frame-ancestors``), nor its links' base changed (``base-uri``). CSP Level 3 hash sources:
    https://www.w3.org/TR/CSP3/#grammardef-hash-source
    """
    digest = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
    return (f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def duration(seconds: float | None) -> str:
    """A short human duration: ``45s``, ``3m 12s``, ``2h 5m``, ``3d 4h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    whole = round(seconds)
    if seconds < 10 and seconds != whole:
        return f"{seconds:.1f}s"
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def utc(stamp: float) -> str:
    """An epoch time as ``2026-12-01 07:42:46 UTC``."""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when(stamp: float | None, now: float) -> str:
    """A table cell: relative time, with the absolute UTC time below it."""
    if stamp is None:
        return "<td class='when'>never</td>"
    iso = datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"<td class='when'>{duration(now - stamp)} ago<br>"
            f"<time datetime='{iso}'>{utc(stamp)}</time></td>")


def _lag(state: PairState) -> int | None:
    return state.progress.total_diff if state.progress is not None else None


def _time_lag(state: PairState) -> float | None:
    return state.insight.max_time_lag if state.insight is not None else None


def _group_status(state: PairState) -> str:
    return state.insight.status if state.insight is not None else "unknown"


def _members(state: PairState) -> int | None:
    return len(state.progress.member_ids) if state.progress is not None else None


def _catch_up(state: PairState) -> float | None:
    insight = state.insight
    return insight.rates.catch_up if insight is not None and insight.rates is not None else None


def _margin(state: PairState) -> float | None:
    return state.insight.retention_margin if state.insight is not None else None


def _history(state: PairState) -> tuple[tuple[float, float], ...]:
    return state.insight.history.points() if state.insight is not None else ()


SPARK_WIDTH, SPARK_HEIGHT, SPARK_SPAN = 120, 24, 3600.0  # pixels; the seconds of history drawn


def sparkline(points: tuple[tuple[float, float], ...], now: float) -> str:
    """An inline SVG line of (time, time lag) points over the hour before ``now``, with its range as the title;
    ``-`` without points. Zero is the bottom edge, the highest value the top; no script, no external asset."""
    shown = [(t, v) for t, v in points if now - SPARK_SPAN <= t <= now]
    if not shown:
        return "-"
    low, high = min(v for _, v in shown), max(v for _, v in shown)
    pad, width, height = 2.0, SPARK_WIDTH - 4.0, SPARK_HEIGHT - 4.0
    scale = height / high if high > 0 else 0.0
    coords = " ".join(f"{pad + width * (t - now + SPARK_SPAN) / SPARK_SPAN:.1f},{pad + height - v * scale:.1f}"
                      for t, v in shown)
    if len(shown) == 1:
        coords = f"{coords} {coords}"  # a zero-length line: its round caps draw a dot
    label = html.escape(f"time lag over the last hour: {duration(low)} to {duration(high)}, "
                        f"latest {duration(shown[-1][1])}", quote=True)
    return (f"<svg class='spark' role='img' aria-label='{label}' width='{SPARK_WIDTH}' height='{SPARK_HEIGHT}' "
            f"viewBox='0 0 {SPARK_WIDTH} {SPARK_HEIGHT}'><title>{label}</title>"
            f"<polyline points='{coords}' fill='none' stroke='currentColor' stroke-width='1.5' "
            f"stroke-linejoin='round' stroke-linecap='round'/></svg>")


def _order(state: PairState) -> tuple[int, str, str]:
    return _STATE_ORDER[state.status], state.pair.instance_id, state.pair.group


def targets(snapshot: Snapshot, limit: int | None = None) -> list[PairState]:
    """Targets, problems first (failing, stale, pending, ok), then by instance and group; the first ``limit``."""
    if limit is None or limit >= len(snapshot.pairs):
        return sorted(snapshot.pairs.values(), key=_order)
    return heapq.nsmallest(limit, snapshot.pairs.values(), key=_order)


def worst_groups(states: Iterable[PairState], limit: int) -> list[PairState]:
    """The groups with data that are furthest behind: by time lag, then by message lag.

    A group with no lag and status ok is not "worst" at all and is left out.
    """
    candidates = (s for s in states
                  if s.progress is not None and ((_lag(s) or 0) > 0 or _group_status(s) not in ("ok", "unknown")))
    return heapq.nlargest(limit, candidates, key=lambda s: (_time_lag(s) or 0.0, _lag(s) or 0))


def _error_text(state: PairState) -> tuple[str, str, str]:
    """(code, message, request id) of the last error, empty strings without one."""
    err = state.error
    if err is None:
        return "", "", ""
    return err.code, err.message, err.request_id or ""


def _target_row(state: PairState, now: float) -> str:
    esc = html.escape
    code, message, request_id = _error_text(state)
    error = ""
    if code:
        rid = f"<br><span class='rid'>RequestId {esc(request_id)}</span>" if request_id else ""
        error = f"<code>{esc(code)}</code> {esc(message)}{rid}"
    status = esc(state.status)
    return (f"<tr class='t-{status}'><td>{esc(state.pair.instance_id)}</td><td>{esc(state.pair.group)}</td>"
            f"<td class='nw'>{esc(state.pair.region)}</td><td><span class='pill s-{status}'>{status}</span></td>"
            f"{_when(state.last_poll, now)}{_when(state.last_success, now)}<td class='err'>{error}</td></tr>")


def _group_row(state: PairState, now: float) -> str:
    esc = html.escape
    status = esc(_group_status(state))
    lag, members = _lag(state), _members(state)
    return (f"<tr><td>{esc(state.pair.instance_id)}</td><td>{esc(state.pair.group)}</td>"
            f"<td class='num'>{'-' if lag is None else f'{lag:,}'}</td>"
            f"<td class='num'>{duration(_time_lag(state))}</td>"
            f"<td><span class='pill g-{status}'>{status}</span></td>"
            f"<td class='num'>{'-' if members is None else members}</td>"
            f"<td class='num'>{duration(_catch_up(state))}</td><td class='num'>{duration(_margin(state))}</td>"
            f"<td class='spark'>{sparkline(_history(state), now)}</td></tr>")


_CSS = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1d2330;--muted:#5d6678;--line:#d8dce4;--head:#f2f4f8;
--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--badbg:#ffebe9;--warnbg:#fff8c5;--demo:#ddf4ff;--demofg:#0a3069}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#8d96a0;--line:#30363d;
--head:#161b22;--ok:#3fb950;--warn:#d29922;--bad:#f85149;--badbg:#3a1d20;--warnbg:#3a2f12;--demo:#0c2d48;
--demofg:#a5d6ff}}
body{background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
margin:0;padding:1.2em 2em}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.6em 0 .5em}
a{color:inherit}nav a{margin-right:1em;color:var(--muted)}
.banner{background:var(--demo);color:var(--demofg);padding:.6em 1em;border-radius:6px;margin:.8em 0}
.facts{display:flex;flex-wrap:wrap;gap:.6em 2em;margin:.8em 0;padding:0;list-style:none}
.facts li{color:var(--muted)}.facts b{color:var(--fg);font-weight:600}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:.35em .6em;text-align:left;vertical-align:top}
th{background:var(--head);position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.when,td.nw,td:first-child{white-space:nowrap}time,.rid{color:var(--muted);font-size:11px}
td.err{max-width:40em;overflow-wrap:anywhere}
tr.t-failing,tr.t-stale{background:var(--badbg)}
.pill{display:inline-block;padding:0 .5em;border-radius:1em;border:1px solid currentColor;font-size:12px}
.s-ok,.g-ok{color:var(--ok)}.s-failing,.s-stale,.g-stalled,.g-stopped,.g-rewound{color:var(--bad)}
.s-pending,.g-lagging,.g-unknown{color:var(--warn)}
.more{color:var(--muted);font-style:italic}.count-bad{color:var(--bad)}
td.spark{padding-top:.15em;padding-bottom:0;color:var(--warn)}svg.spark{display:block}
"""


def _accounts_table(snapshot: Snapshot, options: PageContext) -> str:
    """The accounts, their credential sources and, with several, each one's schedule (its budget schedules its
    own pairs): pairs, effective interval and last cycle."""
    if not options.accounts:
        return ""
    esc = html.escape
    scheduled = {a.account: a for a in snapshot.accounts}
    head = "<th>Pairs</th><th>Effective interval</th><th>Last cycle</th>" if scheduled else ""

    def schedule_cells(name: str) -> str:
        figures = scheduled.get(name)
        if not scheduled:
            return ""
        if figures is None:
            return "<td>-</td><td>-</td><td>-</td>"
        return (f"<td>{figures.pairs:,}</td><td>{duration(figures.effective_interval)}</td>"
                f"<td>{duration(figures.cycle_duration)}</td>")
    cells = "".join(f"<tr><td>{esc(name)}</td><td>{esc(source)}</td>{schedule_cells(name)}</tr>"
                    for name, source in options.accounts)
    return (f"<h2>Accounts</h2>\n<table id=\"accounts\"><thead><tr><th>Account</th><th>Credentials</th>"
            f"{head}</tr></thead><tbody>{cells}</tbody></table>\n")


def render(snapshot: Snapshot, options: PageContext, now: float | None = None) -> str:
    """The whole page for one snapshot."""
    now = time.time() if now is None else now
    esc = html.escape
    total = len(snapshot.pairs)
    counts = snapshot.count_by_status()
    pending = total - sum(counts.values())
    shown = targets(snapshot, options.max_rows)
    rows = [_target_row(s, now) for s in shown]
    if total > len(shown):
        ok_rest = counts["ok"] - sum(1 for s in shown if s.status == "ok")
        rows.append(f"<tr class='more'><td colspan='7'>… and {total - len(shown):,} more targets not shown "
                    f"({ok_rest:,} of them ok); the full list is in the JSON view</td></tr>")
    if not rows:
        rows.append("<tr><td colspan='7'>no targets yet</td></tr>")
    worst = worst_groups(snapshot.pairs.values(), options.top_groups)
    lagging = [_group_row(s, now) for s in worst] or ["<tr><td colspan='9'>no group has lag</td></tr>"]

    facts = [f"version <b>{esc(options.version)}</b>"]
    if options.started is not None:
        facts.append(f"uptime <b>{duration(now - options.started)}</b>")
    interval = duration(snapshot.interval)  # the poller's, so it follows config reloads
    effective = duration(snapshot.effective_interval)
    facts.append(f"poll interval <b>{interval}</b> (effective <b>{effective}</b>)")
    if snapshot.cycle_duration is not None:
        facts.append(f"last cycle <b>{duration(snapshot.cycle_duration)}</b>")
    if any(v.pairs for v in snapshot.schedule):
        classes = " · ".join(f"{esc(v.priority)} <b>{v.pairs:,}</b>" + (
            f" every {duration(v.interval)}" if v.interval is not None and v.priority != "new" else "")
            for v in snapshot.schedule if v.pairs)
        facts.append(f"schedule: {classes}")
    def count(name: str, value: int) -> str:
        bad = " class='count-bad'" if value and name in ("failing", "stale") else ""
        return f"<span{bad}>{name} <b id='n-{name}'>{value:,}</b></span>"

    shown_counts = [count(name, value) for name, value in counts.items()]
    if pending:
        shown_counts.append(count("pending", pending))
    facts.append(f"targets <b>{total:,}</b>: {' · '.join(shown_counts)}")
    facts.append(f"rendered <b>{utc(now)}</b>")
    accounts = ""
    if len(options.accounts) == 1 and options.accounts[0][0] == "default":
        facts.append(f"credentials <b>{esc(options.accounts[0][1])}</b>")
    else:
        accounts = _accounts_table(snapshot, options)
    banners = []
    if options.demo:
        banners.append("<p class='banner' id='demo'><strong>Demo mode:</strong> all data is simulated by the "
                       "built-in alikafka simulator; no cloud account is used.</p>")
    if snapshot.discovering:
        banners.append("<p class='banner'>Listing instances and consumer groups: targets appear when "
                       "discovery answers.</p>")
    nav = "".join(f'<a href="{esc(href)}">{esc(label)}</a>' for label, href in options.links)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>alikafka-exporter</title><style>{_CSS}</style></head>
<body><h1>alikafka-exporter</h1>
<nav>{nav}</nav>
{"".join(banners)}<ul class="facts">{"".join(f"<li>{f}</li>" for f in facts)}</ul>
<h2>Worst groups by time lag</h2>
<table id="worst"><thead><tr><th>Instance</th><th>Group</th><th>Lag (messages)</th><th>Time lag</th>
<th>Status</th><th>Members</th><th>Catch-up ETA</th><th>Retention margin</th><th>Last hour</th></tr></thead><tbody>
{"".join(lagging)}</tbody></table>
<h2>Targets</h2>
<table id="targets"><thead><tr><th>Instance</th><th>Group</th><th>Region</th><th>State</th><th>Last poll</th>
<th>Last success</th><th>Last error</th></tr></thead><tbody>
{"".join(rows)}</tbody></table>
{accounts}</body></html>
"""


def _account(name: str, source: str, snapshot: Snapshot) -> dict[str, Any]:
    """An account's name and credential source; with several accounts, its own schedule's figures too."""
    entry: dict[str, Any] = {"name": name, "credentials": source}
    for figures in snapshot.accounts:
        if figures.account == name:
            entry.update(pairs=figures.pairs, effective_poll_interval_seconds=figures.effective_interval,
                         cycle_duration_seconds=figures.cycle_duration)
    return entry


def as_json(snapshot: Snapshot, options: PageContext, now: float | None = None) -> dict[str, Any]:
    """The page's facts as plain data (every target, uncapped), for scripts and ``?format=json``."""
    now = time.time() if now is None else now
    ordered = targets(snapshot)

    def target(s: PairState) -> dict[str, Any]:
        code, message, request_id = _error_text(s)
        return {"instance_id": s.pair.instance_id, "group": s.pair.group, "region": s.pair.region,
                "account": s.pair.account, "state": s.status, "last_poll": s.last_poll, "last_success": s.last_success,
                "error": {"code": code, "message": message, "request_id": request_id or None} if code else None}

    def group(s: PairState) -> dict[str, Any]:
        return {"instance_id": s.pair.instance_id, "group": s.pair.group, "lag": _lag(s),
                "time_lag_seconds": _time_lag(s), "status": _group_status(s), "members": _members(s),
                "catch_up_seconds": _catch_up(s), "retention_margin_seconds": _margin(s),
                "time_lag_history": [[t, v] for t, v in _history(s)]}

    return {
        "version": options.version, "demo": options.demo, "now": now,
        "uptime_seconds": None if options.started is None else now - options.started,
        "poll_interval_seconds": snapshot.interval,
        "effective_poll_interval_seconds": snapshot.effective_interval,
        "cycle_duration_seconds": snapshot.cycle_duration,
        "schedule": [{"priority": v.priority, "pairs": v.pairs, "planned_interval_seconds": v.interval,
                      "max_wait_seconds": v.oldest} for v in snapshot.schedule],
        "discovering": snapshot.discovering,
        "counts": dict(snapshot.count_by_status()),
        "accounts": [_account(name, source, snapshot) for name, source in options.accounts],
        "targets": [target(s) for s in ordered],
        "worst_groups": [group(s) for s in worst_groups(ordered, options.top_groups)],
    }
