"""Accuracy of consume and produce rates and of the catch-up estimate against the simulator's ground truth.

Run: ``.venv/bin/python -m benchmarks.rate_accuracy`` (part of ``make bench-lag``); ``--quick`` runs two intervals.

Each scenario runs on a virtual clock (twenty simulated minutes take about a second): at every poll the
simulator's GetConsumerProgress answer for that instant goes through the exporter's parser and
:class:`~exporter.polling.rates.RateTracker`, and is compared with ``Simulator.truth``:

- a rate is scored once the group's behaviour has been the same for a whole rate window, against the true
  rate over the window (messages committed or appended in the last ``WINDOW`` seconds, divided by it); within
  target when ``|error| <= max(10% of the truth, 1 message per window)``, the target met when 90% are;
- the catch-up estimate of a draining group is scored once the drain has lasted one window, until its last
  minute (reported apart, as the worst error in seconds),
  against the true time left until the group is back at the head (its time lag within its delay plus one
  commit interval), found by running the simulator's clock forward; within target when
  ``|error| <= max(25% of the truth, one poll interval)``. A caught-up group must say 0 and a group whose lag
  does not shrink must say nothing.

Groups commit every 5 s and polls are not aligned with commits, so a rate read from two polls a few seconds
apart would see nothing consumed half the time: the window must span several commits.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exporter.cloud.models import parse_consumer_progress
from exporter.polling.analysis import Analyzer
from exporter.polling.rates import POLLS, WINDOW, RateTracker
from exporter.simulator import Scenario, Simulator

INSTANCE = "alikafka_post-cn-rates01"
START = 1_800_000_000.0
DURATION = 20 * 60.0
INTERVALS = (5.0, 15.0, 30.0, 60.0)
PHASE = 0.7  # polls are this far off the commit instants
COMMIT_EVERY = 5.0
RATE_TARGET, ETA_TARGET = 0.10, 0.25
# In a drain's last minute the estimate is reported apart, as the worst error in seconds: a group's lag then is a
# few bursts and commits, and whatever the rates say it is caught up within about a minute.
LAST_MINUTE = 60.0


@dataclass(frozen=True)
class GroupCase:
    """A group, what its catch-up estimate should be, and when its behaviour last changed (relative time)."""

    name: str
    topic: str
    eta: str  # "drain": scored against the truth; "zero": must be 0; "absent": must be absent
    changed: float = -math.inf
    delay: float = 2.0
    # production whose rate over the next minutes is its rate over the last five (smooth, or periodic bursts);
    # issue 15's random levels are not, so there the estimate is held to what it promises (the rates holding)
    predictable: bool = True


GROUPS = (
    GroupCase("follower", "steady", "zero"),
    GroupCase("follower-bursty", "bursty", "zero"),
    GroupCase("drain", "steady", "drain", changed=0.0),
    GroupCase("drain-bursty", "bursty", "drain", changed=0.0),
    GroupCase("half-speed", "steady", "absent", changed=-600.0),
    GroupCase("stopped", "steady", "absent", changed=-600.0),
    GroupCase("follower-poisson", "poisson", "zero", delay=1.0),
    GroupCase("drain-poisson", "poisson", "drain", changed=0.0, delay=1.0, predictable=False),
)


def spec() -> dict[str, Any]:
    resume = [{"at": 0, "type": "resume"}]
    return {"seed": 5, "instances": [{
        "instance_id": INSTANCE, "region": "cn-hangzhou",
        "topics": [{"name": "steady", "partitions": 4, "rate": 20},
                   {"name": "bursty", "partitions": 4, "rate": 20, "shape": "bursty"},
                   # issue 15's real traffic: Poisson arrivals, the rate jumping between 2, 20 and 200 msg/s
                   # every 10-40 s, partitions skewed
                   {"name": "poisson", "partitions": 4, "rate": 20,
                    "traffic": {"levels": [2, 20, 200], "dwell": [10, 40], "skew": 0.5}}],
        "groups": [
            {"name": "follower", "topics": ["steady"], "delay": 2},
            {"name": "follower-bursty", "topics": ["bursty"], "delay": 2},
            {"name": "drain", "topics": ["steady"], "behaviour": "stopped", "since": -1800, "events": resume},
            {"name": "drain-bursty", "topics": ["bursty"], "behaviour": "stopped", "since": -1800,
             "events": resume},
            {"name": "half-speed", "topics": ["steady"], "behaviour": "lagging", "fraction": 0.5, "since": -600},
            {"name": "stopped", "topics": ["steady"], "behaviour": "stopped", "since": -600},
            {"name": "follower-poisson", "topics": ["poisson"], "delay": 1, "commit_jitter": 1},
            {"name": "drain-poisson", "topics": ["poisson"], "delay": 1, "commit_jitter": 1,
             "events": [{"at": -1800, "type": "stall"}, *resume]},
        ],
    }]}


@dataclass
class Score:
    """Evaluations of one kind: how many, how many within target, and the relative errors."""

    errors: list[float] = field(default_factory=list)
    within: int = 0

    def add(self, ok: bool, relative: float) -> None:
        self.errors.append(relative)
        self.within += ok

    def share(self) -> float:
        return self.within / len(self.errors) if self.errors else 1.0

    def p90(self) -> float:
        if not self.errors:
            return 0.0
        ordered = sorted(self.errors)
        return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


def _sums(sim: Simulator, group: str, at: float) -> tuple[int, int]:
    """(committed, end) offsets of a group summed over its partitions at ``at``."""
    truth = sim.truth(INSTANCE, group, at)
    return sum(t.consumer_offset for t in truth), sum(t.broker_offset for t in truth)


def _caught_up_at(sim: Simulator, case: GroupCase, begin: float) -> float:
    """When the group is back at the head: every partition's true time lag within delay + one commit interval."""
    t = begin
    while t < START + 3 * DURATION:
        if max(p.time_lag_seconds for p in sim.truth(INSTANCE, case.name, t)) <= case.delay + COMMIT_EVERY + 1:
            return t
        t += 1.0
    return math.inf


@dataclass
class Result:
    rates: Score = field(default_factory=Score)
    eta: Score = field(default_factory=Score)  # against the time the drain really took
    eta_held: Score = field(default_factory=Score)  # against the time it would take if the rates held
    eta_rule: Score = field(default_factory=Score)  # "zero" and "absent" groups
    last_minute: float = 0.0  # worst |error| of the catch-up estimate in a drain's last minute, seconds


def run(interval: float) -> dict[str, Result]:
    """Poll every group at ``interval`` on a virtual clock and score it."""
    clock = [START]
    sim = Simulator(Scenario.from_dict(spec()), {"k": "s"}, clock=lambda: clock[0])
    tracker = RateTracker()
    analyzer = Analyzer()  # the time lags that say whether a group is caught up
    results = {case.name: Result() for case in GROUPS}
    done = {case.name: _caught_up_at(sim, case, START) for case in GROUPS if case.eta == "drain"}
    params = {"RegionId": "cn-hangzhou", "InstanceId": INSTANCE}
    rng = random.Random(int(interval * 1000))
    t = PHASE
    while t <= DURATION:
        clock[0] = START + t
        for case in GROUPS:
            body = sim.handle("GetConsumerProgress", {**params, "ConsumerId": case.name}, "k")
            progress = parse_consumer_progress(body)
            insight = analyzer.observe(INSTANCE, case.name, progress, clock[0])
            rates = tracker.observe(INSTANCE, case.name, progress, clock[0], insight.time_lags)
            _score(sim, case, rates.consume.get(case.topic), rates.produce.get(case.topic), rates.catch_up,
                   t, interval, done.get(case.name), results[case.name])
        t += interval * rng.uniform(0.9, 1.1)  # a poller's schedule is never exact
    return results


def _score(sim: Simulator, case: GroupCase, consume: float | None, produce: float | None, eta: float | None,
           t: float, interval: float, done: float | None, result: Result) -> None:
    now = START + t
    window = max(WINDOW, POLLS * interval)  # the exporter's window: 5 minutes, or ten polls when longer
    # a behaviour change (the drain starting, the drain over) moves the rates: scored a whole window later
    settled = t >= case.changed + window + interval and not (done is not None and
                                                              done <= now < done + window + interval)
    committed, end = _sums(sim, case.name, now)
    committed_before, end_before = _sums(sim, case.name, now - window)
    true_consume, true_produce = (committed - committed_before) / window, (end - end_before) / window
    if settled and t >= window + interval:
        for estimate, true in ((consume, true_consume), (produce, true_produce)):
            error = math.inf if estimate is None else abs(estimate - true)
            result.rates.add(error <= max(RATE_TARGET * true, 1 / window), error / true if true else error)
    if case.eta == "drain" and done is not None and settled and now < done:
        true_eta = done - now
        error = math.inf if eta is None else abs(eta - true_eta)
        if true_eta < LAST_MINUTE:
            result.last_minute = max(result.last_minute, error)
            return
        result.eta.add(error <= max(ETA_TARGET * true_eta, interval), error / true_eta)
        # what the metric promises: the time to catch up if the window's true rates held
        held = (end - committed) / (true_consume - true_produce) if true_consume > true_produce else math.inf
        error = math.inf if eta is None else abs(eta - held)
        result.eta_held.add(error <= max(ETA_TARGET * held, interval), error / held)
    elif case.eta == "zero" and t >= window:
        result.eta_rule.add(eta == 0.0, 0.0 if eta == 0.0 else 1.0)
    elif case.eta == "absent" and settled:
        result.eta_rule.add(eta is None, 0.0 if eta is None else 1.0)


def _pct(value: float) -> str:
    return "inf" if math.isinf(value) else f"{100 * value:.1f}%"


def report(intervals: tuple[float, ...]) -> tuple[str, bool]:
    """The markdown table of every group at every interval, and whether every target was met."""
    lines = ["| group | interval | rate evals | rates within 10% | rate p90 error | ETA evals | ETA within 25% "
             "of the time taken | p90 error | within 25% of the time if rates held | p90 error | last minute: "
             "worst error | 0 / absent as expected |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ok = True
    cases = {case.name: case for case in GROUPS}
    for interval in intervals:
        for name, result in run(interval).items():
            rule = f"{_pct(result.eta_rule.share())} of {len(result.eta_rule.errors)}" if result.eta_rule.errors \
                else "-"
            eta = (f"{len(result.eta.errors)} | {_pct(result.eta.share())} | {_pct(result.eta.p90())} | "
                   f"{_pct(result.eta_held.share())} | {_pct(result.eta_held.p90())} | {result.last_minute:.0f} s"
                   if result.eta.errors else "- | - | - | - | - | -")
            lines.append(f"| {name} | {interval:g} s | {len(result.rates.errors)} | {_pct(result.rates.share())} | "
                         f"{_pct(result.rates.p90())} | {eta} | {rule} |")
            # Rates: p90 within 10% (a burst more or less in a window can put single readings past it). ETA:
            # every evaluation within 25% of the time the rates promise; of the time taken where production is
            # predictable.
            ok = ok and result.rates.p90() <= RATE_TARGET and result.eta_held.share() == 1.0 \
                and (result.eta.share() == 1.0 or not cases[name].predictable) and result.eta_rule.share() == 1.0
    return "\n".join(lines), ok


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    """Print the table; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="two intervals only")
    args = parser.parse_args(argv)
    started = time.monotonic()
    table, ok = report((5.0, 60.0) if args.quick else INTERVALS)
    out(f"Machine: {platform.machine()}, Python {platform.python_version()}; rate window {WINDOW:g} s or {POLLS} "
        "polls, "
        f"{DURATION / 60:g} simulated minutes per interval, {time.monotonic() - started:.1f} s of wall time")
    out(table)
    out(f"\nAll targets met: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
