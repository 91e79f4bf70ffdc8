"""The status page as a browser shows it: headless Chromium against a running exporter and simulator.

The simulator runs a scenario with two stopped groups (one stopped long ago), a healthy one and one
named like an XSS payload; the exporter polls those plus a group the simulator does not know, and a
fault makes the healthy group's polls fail once it has data. Chromium renders ``/`` and dumps the DOM
after parsing, which is what a user sees: target rows, the failing and unknown groups' error codes, the worst groups in time-lag order, and the hostile name as text, not as a script
element, under the page's strict content security policy (nothing it uses is blocked). Screenshots
(light and dark scheme) are kept in the test's tmp dir for humans. A second test runs ``--demo`` and checks
each worst group's inline SVG sparkline (points inside the drawing, oldest left, its range as title and
aria-label) and the ETA and margin columns, with nothing blocked by the policy.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import clean_env, free_port, http_get, process, python_module, wait_for
from tests.support.tools import find_tool
from tests.unit.web.test_page import Tables

pytestmark = pytest.mark.e2e

INSTANCE = "alikafka_post-cn-page0001"
HOSTILE = "<script>document.title='pwned'</script>"
SCENARIO = f"""
seed: 5
instances:
  - instance_id: {INSTANCE}
    region: cn-hangzhou
    topics:
      - {{name: orders, partitions: 3, rate: 5}}
    groups:
      - {{name: stopped-long-ago, topics: [orders], behaviour: stopped, since: -3000, members: 0}}
      - {{name: stopped-recently, topics: [orders], behaviour: stopped, since: -600, members: 0}}
      - {{name: healthy, topics: [orders], delay: 1, members: 2}}
      - {{name: {json.dumps(HOSTILE)}, topics: [orders], delay: 1, members: 1}}
"""
GROUPS = ["stopped-long-ago", "stopped-recently", "healthy", HOSTILE, "ghost"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path to Chromium (scripts/tools.d/chromium.sh installs it)."""
    return find_tool("chromium")


def _browser(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_browser_shows_targets_errors_worst_groups_and_escapes(tmp_path: Path, chromium: str) -> None:
    """Chromium's DOM of / has every target, the ghost's error, worst groups in order, no injected script."""
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "api": {"region": "cn-hangzhou", "max_retries": 0},
        "poll": {"interval": "3s", "stale_after": "60s"},
        "targets": [{"instance_id": INSTANCE, "groups": GROUPS}],
    }))
    sim_port, exp_port = free_port(), free_port()
    key = ("LTAI-page", "page-secret-value-77")
    sim_cmd = python_module("exporter.simulator", "--listen", f"127.0.0.1:{sim_port}",
                            "--scenario", str(tmp_path / "scenario.yaml"), "--access-key", f"{key[0]}:{key[1]}")
    exp_cmd = python_module("exporter", "--config.file", str(config), "--web.listen-address", f"127.0.0.1:{exp_port}")
    exp_env = clean_env(ALIBABA_CLOUD_ACCESS_KEY_ID=key[0], ALIBABA_CLOUD_ACCESS_KEY_SECRET=key[1],
                        ALIKAFKA_EXPORTER_API__ENDPOINT=f"http://127.0.0.1:{sim_port}/")
    url = f"http://127.0.0.1:{exp_port}/"

    def settled() -> dict[str, object] | None:
        status, body = http_get(url + "?format=json")
        data = json.loads(body) if status == 200 else {}
        worst = [g for g in data.get("worst_groups", []) if g["time_lag_seconds"] is not None]
        failing = [t for t in data.get("targets", []) if t["group"] == "healthy" and t["state"] == "failing"]
        return data if len(worst) >= 2 and failing else None

    with process(sim_cmd, clean_env(), tmp_path / "sim.log"), process(exp_cmd, exp_env, tmp_path / "exporter.log"):
        wait_for(lambda: True if http_get(url + "readyz")[0] == 200 else None, 30, "exporter readiness")
        # from now on every poll of "healthy" gets a 503: it turns failing, with its last data kept
        fault = urllib.request.Request(f"http://127.0.0.1:{sim_port}/_sim/faults", method="POST",
                                       data=json.dumps({"kind": "http_503", "group": "healthy"}).encode(),
                                       headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(fault, timeout=5) as answer:
            assert answer.status == 200
        wait_for(settled, 30, "time lags of the stopped groups")
        # Chromium logs what the page's Content-Security-Policy blocks (an inline style not allowed) as a console line.
        dom = _browser(chromium, tmp_path / "profile", "--enable-logging=stderr", "--v=0", "--dump-dom", url)
        with urllib.request.urlopen(url, timeout=5) as answer:
            policy = answer.headers.get("Content-Security-Policy", "")
        shot = tmp_path / "status-page.png"
        dark = tmp_path / "status-page-dark.png"
        _browser(chromium, tmp_path / "profile", "--window-size=1280,1100", f"--screenshot={shot}", url)
        _browser(chromium, tmp_path / "profile", "--force-dark-mode", "--window-size=1280,1100",
                 f"--screenshot={dark}", url)

    assert dom.returncode == 0, dom.stderr[-2000:]
    assert policy.startswith("default-src 'none'")
    assert "Content Security Policy" not in dom.stderr, dom.stderr[-2000:]  # the page's own style is allowed
    page = Tables(dom.stdout)
    assert "script" not in page.tags  # the hostile name did not become an element
    assert "<title>alikafka-exporter</title>" in dom.stdout  # ...and did not run either
    targets = {row[1]: row for row in page.body_rows("targets")}
    assert set(targets) == set(GROUPS)
    assert all(row[0] == INSTANCE and row[2] == "cn-hangzhou" for row in targets.values())
    assert targets["ghost"][3] == "stale"
    assert targets["ghost"][6].startswith("BIZ_SUBSCRIPTION_NOT_FOUND")
    assert "RequestId" in targets["ghost"][6]
    assert targets["healthy"][3] == "failing" and targets["healthy"][6].startswith("ServiceUnavailable")
    assert targets["stopped-recently"][3] == "ok" and targets["stopped-recently"][6] == ""
    assert list(targets)[:2] == ["healthy", "ghost"]  # problems first: failing, then stale

    worst = page.body_rows("worst")
    names = [row[1] for row in worst]
    assert names[:2] == ["stopped-long-ago", "stopped-recently"]
    assert worst[0][4] == "stopped" and worst[0][5] == "0"
    assert int(worst[0][2].replace(",", "")) > int(worst[1][2].replace(",", "")) > 0
    text = " ".join("".join(page.text).split())
    assert "ok 3 · failing 1 · stale 1" in text
    assert "page-secret-value-77" not in dom.stdout
    assert shot.exists() and shot.stat().st_size > 10_000
    assert dark.exists() and dark.read_bytes() != shot.read_bytes()  # prefers-color-scheme: dark restyles it


class _Sparklines(HTMLParser):
    """Each worst-group sparkline in a DOM: its aria-label, its title text and its polyline's points."""

    def __init__(self, dom: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[dict[str, str]] = []
        self._title = False
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "svg" and values.get("class") == "spark":
            self.found.append({"label": values.get("aria-label", ""), "title": "", "points": ""})
        elif tag == "polyline" and self.found:
            self.found[-1]["points"] = values.get("points", "")
        self._title = tag == "title" and bool(self.found)

    def handle_endtag(self, tag: str) -> None:
        self._title = False

    def handle_data(self, data: str) -> None:
        if self._title:
            self.found[-1]["title"] += data


def test_browser_draws_the_worst_groups_sparklines_eta_and_margin_in_demo_mode(tmp_path: Path, chromium: str) -> None:
    """``--demo``: after a few polls Chromium's DOM has an inline SVG sparkline per worst group with a
    history, its points inside the drawing and its range as title, the ETA and margin columns filled,
    and the page's content security policy blocks nothing."""
    port = free_port()
    env = clean_env(ALIKAFKA_EXPORTER_POLL__INTERVAL="2s", ALIKAFKA_EXPORTER_RETENTION__REFRESH="10s")
    url = f"http://127.0.0.1:{port}/"

    def drawn() -> dict[str, Any] | None:
        status, body = http_get(url + "?format=json")
        data = json.loads(body) if status == 200 else {}
        worst = data.get("worst_groups", [])
        long = [g for g in worst if len(g["time_lag_history"]) >= 3]
        margins = [g for g in worst if g["retention_margin_seconds"] is not None]
        return data if long and margins else None

    with process(python_module("exporter", "--demo", "--web.listen-address", f"127.0.0.1:{port}"), env,
                 tmp_path / "exporter.log"):
        data = wait_for(drawn, 120, "worst groups with three points of history and a margin")
        dom = _browser(chromium, tmp_path / "profile", "--enable-logging=stderr", "--v=0", "--dump-dom", url)
        shot = tmp_path / "sparklines.png"
        _browser(chromium, tmp_path / "profile", "--window-size=1400,900", f"--screenshot={shot}", url)

    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Content Security Policy" not in dom.stderr, dom.stderr[-2000:]
    assert "script" not in Tables(dom.stdout).tags
    page = Tables(dom.stdout)
    assert page.tables["worst"][0][6:] == ["Catch-up ETA", "Retention margin", "Last hour"]
    rows = page.body_rows("worst")
    assert any(row[7] != "-" for row in rows)  # a retention margin is shown
    sparks = _Sparklines(dom.stdout).found
    assert sparks, "no sparkline in the DOM"
    assert all(s["label"].startswith("time lag over the last hour: ") and s["title"] == s["label"] for s in sparks)
    longest = max(sparks, key=lambda s: len(s["points"].split()))
    coords = [tuple(float(c) for c in point.split(",")) for point in longest["points"].split()]
    assert len(coords) >= 3
    assert all(0 <= x <= 120 and 0 <= y <= 24 for x, y in coords)
    assert [x for x, _ in coords] == sorted(x for x, _ in coords)  # oldest to newest, left to right
    assert len(sparks) == sum(1 for row in rows if row[8] != "-")  # one per row with a history, "-" elsewhere
    assert any(g["time_lag_history"] for g in data["worst_groups"])
    assert shot.exists() and shot.stat().st_size > 10_000
