"""One instance/consumer-group pair to poll: what the targets resolve to, and the key of every later stage.

A pair is identified by its instance, group and region. The labels and thresholds its target gives it ride
along without being part of that identity: a reload that changes them keeps the pair's history, and the
pair's series carry the new values at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.config.settings import DEFAULT_ACCOUNT, ThresholdSettings


@dataclass(frozen=True, slots=True, order=True)
class Pair:
    """One instance/consumer-group pair to poll, with the region its API calls go to and the account they use."""

    instance_id: str
    group: str
    region: str
    account: str = DEFAULT_ACCOUNT
    # the target's labels, sorted by name: added to every series of the pair (not part of its identity)
    labels: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    # the target's thresholds over the top-level ones (not part of its identity)
    thresholds: ThresholdSettings = field(default_factory=ThresholdSettings, compare=False)
