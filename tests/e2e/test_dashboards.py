"""The Grafana dashboards: valid against Grafana's own schema, consistent, and every query answers.

The schema is generated from ``@grafana/schema`` (see tests/support/fixtures/grafana/README.md) and committed,
so this needs no npm. The live part runs the exporter in demo mode under a real Prometheus (one for
the whole module) and evaluates every panel query and every variable query, with the variables set to
values Prometheus itself returns, the way Grafana would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from tests.support.demo_prometheus import DemoPrometheus, PromError, demo_stack
from tests.support.procs import wait_for
from tests.support.tools import FIXTURES, ROOT

BOARDS = {path.stem: json.loads(path.read_text()) for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))}
SCHEMA = json.loads((FIXTURES / "grafana" / "dashboard.schema.json").read_text())
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's global variables that may appear in queries, links and titles
BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms", "__from",
            "__to", "__url_time_range", "__field", "__data", "__value", "__series", "__dashboard", "__all",
            "__org", "__user", "timeFilter"}
# what Grafana substitutes for them in the live checks (Prometheus holds well under a minute of data)
INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "__range_s": "300"}
REF = re.compile(r"\$(\w+)|\$\{(\w+)(?:[.:][^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]")
LABEL_VALUES = re.compile(r"^label_values\((?:(.*),\s*)?(\w+)\)$", re.DOTALL)


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def data_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in panels(board) if p["type"] != "row"]


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def references(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in REF.finditer(text)}


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    return list(board.get("templating", {}).get("list", []))


def variable_query(var: dict[str, Any]) -> str:
    query = var["query"]
    return str(query["query"] if isinstance(query, dict) else query)


BOARD_PARAMS = pytest.mark.parametrize("name", sorted(BOARDS))


def test_the_three_dashboards_exist() -> None:
    assert sorted(BOARDS) == ["consumer-group", "exporter-health", "overview"]


@BOARD_PARAMS
def test_valid_against_grafana_schema(name: str) -> None:
    """The whole dashboard, then every panel on its own against Panel or RowPanel (clearer errors)."""
    board = BOARDS[name]
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(board)]
    for panel in panels(board):
        kind = "RowPanel" if panel.get("type") == "row" else "Panel"
        validator = jsonschema.Draft7Validator({"$ref": f"#/definitions/{kind}", "definitions": SCHEMA["definitions"]})
        errors += [f"panel {panel.get('title')!r}: {list(e.absolute_path)}: {e.message}"
                   for e in validator.iter_errors(panel)]
    assert not errors, "\n".join(errors)


def test_schema_rejects_what_it_should() -> None:
    """The fixture is a real schema: an unknown key, a missing type and a wrong type are errors."""
    panel = data_panels(BOARDS["overview"])[0]
    validator = jsonschema.Draft7Validator({"$ref": "#/definitions/Panel", "definitions": SCHEMA["definitions"]})
    assert not list(validator.iter_errors(panel))
    assert list(validator.iter_errors({**panel, "titel": "typo"}))
    assert list(validator.iter_errors({k: v for k, v in panel.items() if k != "type"}))
    assert list(validator.iter_errors({**panel, "gridPos": {"h": "8", "w": 6, "x": 0, "y": 0}}))


def test_identity() -> None:
    """Stable, unique uids named after the file; current schema version; tagged for the board links."""
    uids = [board["uid"] for board in BOARDS.values()]
    assert len(set(uids)) == len(uids)
    titles = [board["title"] for board in BOARDS.values()]
    assert len(set(titles)) == len(titles)
    for name, board in BOARDS.items():
        assert board["uid"] == f"alikafka-{name}"
        assert len(board["uid"]) <= 40
        assert board["schemaVersion"] >= 39
        assert "alikafka" in board["tags"]
        assert board.get("id") is None  # set by Grafana on import
        ids = [p["id"] for p in panels(board)]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"


@BOARD_PARAMS
def test_every_query_uses_the_datasource_variable(name: str) -> None:
    board = BOARDS[name]
    ds_vars = [v for v in variables(board) if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in ds_vars] == [("datasource", "prometheus")]
    for panel in data_panels(board):
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for tgt in panel["targets"]:
            assert tgt.get("datasource") == DATASOURCE, (panel["title"], tgt["refId"])
            assert tgt.get("expr"), (panel["title"], tgt["refId"])
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]
    for var in variables(board):
        if var["type"] == "query":
            assert var.get("datasource") == DATASOURCE, var["name"]

    # no hard-coded data source anywhere: every reference is the variable (or Grafana's built-in annotations)
    def refs(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            if "datasource" in node:
                yield node["datasource"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(board["panels"] + [board["templating"]]):
        assert ref == DATASOURCE, ref
    for annotation in board.get("annotations", {}).get("list", []):
        assert annotation["datasource"] in (DATASOURCE, {"type": "grafana", "uid": "-- Grafana --"})


@BOARD_PARAMS
def test_variables_referenced_exist_and_are_used(name: str) -> None:
    board = BOARDS[name]
    defined = [v["name"] for v in variables(board)]
    assert len(set(defined)) == len(defined)
    used: set[str] = set()
    for text in strings({k: v for k, v in board.items() if k != "templating"}):
        used |= references(text)
    # variables used by other variables' queries count too, and must be defined before them
    for i, var in enumerate(variables(board)):
        if var["type"] != "query":
            continue
        refs = references(variable_query(var))
        assert refs <= set(defined[:i]), f"{var['name']} uses {refs - set(defined[:i])} before it is defined"
        used |= refs
    unknown = used - set(defined) - BUILTINS
    assert not unknown, f"undefined variables: {unknown}"
    unused = set(defined) - used
    assert not unused, f"variables nobody uses: {unused}"


@BOARD_PARAMS
def test_units_thresholds_and_layout(name: str) -> None:
    board = BOARDS[name]
    for panel in data_panels(board):
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f"{panel['title']}: no unit"
        steps = defaults["thresholds"]["steps"]
        assert steps[0]["value"] is None, panel["title"]  # the base step
        values = [s["value"] for s in steps[1:]]
        assert values == sorted(values), panel["title"]
        assert panel.get("description"), f"{panel['title']}: no description"
    # time lag is in seconds and message lag in plain numbers wherever they are charted
    for panel in data_panels(board):
        exprs = " ".join(t["expr"] for t in panel["targets"])
        if panel["type"] in ("timeseries", "stat") and "lag_seconds" in exprs and "group_lag" not in exprs:
            assert panel["fieldConfig"]["defaults"]["unit"] == "s", panel["title"]
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(board):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] >= 1 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_the_boards_filter_by_instance_group_and_topic() -> None:
    """Issue 7's variables: instance, group and topic on the overview, instance and group on the health board."""
    names = {name: [v["name"] for v in variables(board)] for name, board in BOARDS.items()}
    assert names["overview"] == ["datasource", "job", "instance_id", "group", "topic"]
    assert names["exporter-health"] == ["datasource", "job", "instance", "instance_id", "group"]
    topic = variables(BOARDS["overview"])[-1]
    assert topic["allValue"] == ".*"  # All must keep the groups without topic data (see the filter's `or up`)


def test_links_point_at_existing_boards_and_variables() -> None:
    uids = {board["uid"]: board for board in BOARDS.values()}
    found = 0
    for name, board in BOARDS.items():
        assert any(link["type"] == "dashboards" and "alikafka" in link["tags"] for link in board["links"]), name
        for text in strings(board):
            for uid, query in re.findall(r"/d/([\w-]+)(?:/[\w-]*)?\?([^\s\"]*)", text):
                found += 1
                assert uid in uids, f"{name}: link to unknown dashboard {uid}"
                target_vars = {v["name"] for v in variables(uids[uid])}
                for var in re.findall(r"var-(\w+)=", query):
                    assert var in target_vars, f"{name}: link sets {var}, which {uid} does not have"
    assert found >= 3


def documented_families() -> set[str]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    return set(re.findall(r"^### `(alikafka_\w+)`", text, re.MULTILINE))


def test_metric_names_are_the_documented_ones() -> None:
    families = documented_families()
    assert "alikafka_consumergroup_max_lag_seconds" in families
    for name, board in BOARDS.items():
        texts = [t["expr"] for p in data_panels(board) for t in p["targets"]]
        texts += [variable_query(v) for v in variables(board) if v["type"] == "query"]
        for text in texts:
            for metric in re.findall(r"\balikafka_\w+", text):
                base = re.sub(r"_(bucket|count|sum)$", "", metric)
                assert metric in families or base in families, f"{name}: {metric} is not in docs/metrics.md"


# selectors whose result is legitimately empty in a healthy system (no throttling, no failures, no errors)
MAYBE_EMPTY = re.compile(r'Throttling|state=~"failing\|stale"|code!="200"|== 0\)')


def test_queries_that_may_be_empty_fall_back_to_zero() -> None:
    """A stat of failures shows 0, not "No data", when there are none (the demo may or may not throttle)."""
    found = 0
    for name, board in BOARDS.items():
        for panel in data_panels(board):
            for tgt in panel["targets"]:
                if MAYBE_EMPTY.search(tgt["expr"]):
                    found += 1
                    assert re.search(r"\bor( on\(\))? (vector\(0\)|sum by)", tgt["expr"]), (name, panel["title"])
    assert found >= 6


# families the exporter sends only after a minute of history, and only while the group drains (the ETA)
FROM_HISTORY = re.compile(r"alikafka_(consumergroup_consume_rate|topic_produce_rate|consumergroup_catch_up_seconds)")


def test_rate_and_eta_queries_fall_back_honestly() -> None:
    """The rates fall back to the rate of the offsets (the same quantity, read by PromQL); the catch-up ETA
    falls back to NaN, shown as "not shrinking", never to 0, which would say the group is caught up."""
    found: dict[str, int] = {}
    for panel in data_panels(BOARDS["consumer-group"]):
        for tgt in panel["targets"]:
            family = FROM_HISTORY.search(tgt["expr"])
            if not family:
                continue
            found[family.group(1)] = found.get(family.group(1), 0) + 1
            primary, _, fallback = tgt["expr"].partition("\nor ")
            assert fallback, (panel["title"], tgt["expr"])
            assert FROM_HISTORY.search(primary) and not FROM_HISTORY.search(fallback), panel["title"]
            if family.group(1) == "consumergroup_catch_up_seconds":
                assert fallback.startswith("on() (") and fallback.endswith("* NaN)"), panel["title"]
                if panel["type"] == "stat":
                    specials = [m["options"]["match"] for m in panel["fieldConfig"]["defaults"]["mappings"]
                                if m["type"] == "special"]
                    assert specials == ["nan"], panel["title"]
                    # the latest value, NaN included: lastNotNull would show an ETA that no longer holds
                    assert panel["options"]["reduceOptions"]["calcs"] == ["last"], panel["title"]
            else:
                assert fallback.startswith("sum by (topic) (max by (topic, partition) (rate(alikafka_"), panel["title"]
    assert found == {"consumergroup_consume_rate": 1, "topic_produce_rate": 1, "consumergroup_catch_up_seconds": 2}


# --- live: every expression against a real Prometheus scraping the demo ------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, prometheus_bin: str) -> Iterator[DemoPrometheus]:
    # kafka-lag-exporter's names too, and the namespace label its dashboard selects on (which Kubernetes
    # service discovery gives a scrape target), for test_kafka_lag_exporter_dashboard_queries_return_data
    with demo_stack(tmp_path_factory.mktemp("dashboards"), prometheus_bin,
                    exporter_env={"ALIKAFKA_EXPORTER_METRICS__COMPAT": "kafka_lag_exporter"},
                    target_labels={"namespace": KLE_NAMESPACE}) as stack:
        yield stack


def regex_escape(value: str) -> str:
    """How Grafana escapes one value of a multi-value variable inside a PromQL regex string."""
    return re.sub(r"([\\^$*+?.()|\[\]{}])", r"\\\\\1", value)


def substitute(text: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in values:
            raise KeyError(f"no value for ${name} in {text!r}")
        return values[name]

    return REF.sub(one, text)


def resolve_variables(board: dict[str, Any], demo: DemoPrometheus) -> tuple[dict[str, str], list[str]]:
    """Values for the board's variables, in order, from what Prometheus answers; and the problems found."""
    values = dict(INTERVALS)
    problems = []
    for var in variables(board):
        if var["type"] == "datasource":
            values[var["name"]] = "prometheus"
            continue
        query = substitute(variable_query(var), values)
        match = LABEL_VALUES.match(query.strip())
        if not match:
            problems.append(f"${var['name']}: not a label_values() query: {query}")
            continue
        selector, label = match.groups()
        try:
            if selector:
                demo.query(selector)  # parses and is a valid selector
            options = sorted(demo.label_values(label, selector))
        except PromError as exc:
            problems.append(f"${var['name']}: {query}: {exc}")
            continue
        if not options:
            problems.append(f"${var['name']}: {query}: no values")
            continue
        if var.get("multi") and var.get("includeAll"):  # "All": the custom all value, else every option
            values[var["name"]] = var.get("allValue") or "(" + "|".join(regex_escape(o) for o in options) + ")"
        else:  # the first option, Grafana's default
            values[var["name"]] = options[0]
    return values, problems


def mapped_values(panel: dict[str, Any]) -> set[str] | None:
    mappings = panel["fieldConfig"]["defaults"].get("mappings", [])
    keys = {key for m in mappings if m["type"] == "value" for key in m["options"]}
    return keys or None


@pytest.mark.e2e
@BOARD_PARAMS
def test_every_query_returns_data_from_the_demo(name: str, demo: DemoPrometheus) -> None:
    """Each panel query and variable query parses and returns data, as instant and as range query."""
    board = BOARDS[name]
    values, problems = resolve_variables(board, demo)
    checked = 0
    for panel in data_panels(board):
        label_sets = []
        for tgt in panel["targets"]:
            expr = substitute(tgt["expr"], values)
            where = f"{panel['title']!r} {tgt['refId']}: {expr}"
            try:
                result = demo.query(expr)
                ranged = demo.query_range(expr, 10) if tgt.get("range") else [None]
            except PromError as exc:
                problems.append(f"{where}: {exc}")
                continue
            checked += 1
            if not result or not ranged:
                problems.append(f"{where}: no data ({'instant' if not result else 'range'})")
                continue
            label_sets.append({frozenset(r["metric"]) for r in result})
            allowed = mapped_values(panel)
            if allowed is not None:  # a value with no mapping would show as a bare number
                shown = {f"{float(r['value'][1]):g}" for r in result}
                if not shown <= allowed:
                    problems.append(f"{where}: values {shown - allowed} have no value mapping")
        if any(t["id"] == "merge" for t in panel.get("transformations", [])) and len(set().union(*label_sets)) > 1:
            problems.append(f"{panel['title']!r}: merged queries return different label sets {label_sets}")
    assert checked == sum(len(p["targets"]) for p in data_panels(board))
    assert not problems, "\n".join(problems)


@pytest.mark.e2e
def test_the_demo_fills_the_boards(demo: DemoPrometheus) -> None:
    """Spot checks that the numbers mean what the panels say, on the demo's known groups."""
    values, _ = resolve_variables(BOARDS["overview"], demo)
    groups = next(p for p in data_panels(BOARDS["overview"]) if p["title"] == "Groups")
    assert float(demo.query(substitute(groups["targets"][0]["expr"], values))[0]["value"][1]) == 31
    status = next(p for p in data_panels(BOARDS["overview"]) if p["title"] == "Group status")
    coded = demo.query(substitute(status["targets"][0]["expr"], values))
    with_status = demo.query("count(count by (instance_id, group) (alikafka_consumergroup_status))")
    assert len(coded) == int(float(with_status[0]["value"][1])) >= 30  # one status per group, none lost
    cg_values, _ = resolve_variables(BOARDS["consumer-group"], demo)
    assert (cg_values["instance_id"], cg_values["group"]) == ("alikafka_post-cn-demo0001", "analytics-etl")
    members = next(p for p in data_panels(BOARDS["consumer-group"]) if p["title"] == "Members" and p["type"] == "stat")
    assert float(demo.query(substitute(members["targets"][0]["expr"], cg_values))[0]["value"][1]) == 6
    # the demo's search-indexer-1 rebalances 15 s after the start: the board counts it
    rebalances = next(p for p in data_panels(BOARDS["consumer-group"]) if p["title"] == "Rebalances")
    expr = substitute(rebalances["targets"][0]["expr"], {**cg_values, "group": "search-indexer-1"})
    wait_for(lambda: [r for r in demo.query(expr) if float(r["value"][1]) >= 1] or None, 30,
             "a rebalance of search-indexer-1")


@pytest.mark.e2e
def test_the_demo_fills_the_retention_and_catch_up_panels(demo: DemoPrometheus) -> None:
    """The demo's email-sender loses messages on a full disk: the board counts them, in the stat and in the
    partitions table; a healthy group has days of margin and, once the exporter has a minute of history, an
    ETA of 0 (caught up) and the exporter's own rates in place of the offsets' rate."""
    values, _ = resolve_variables(BOARDS["consumer-group"], demo)
    board = {p["title"]: p for p in data_panels(BOARDS["consumer-group"])}

    def query(title: str, group: str, ref: int = 0) -> list[dict[str, Any]]:
        return demo.query(substitute(board[title]["targets"][ref]["expr"], {**values, "group": group}))

    lost = wait_for(lambda: query("Lost messages", "email-sender") or None, 30, "email-sender's lost messages")
    assert float(lost[0]["value"][1]) > 0
    table = query("Partitions", "email-sender", 6)
    assert table and all(float(r["value"][1]) > 0 for r in table)
    assert float(query("Lost messages", "orders-consumer")[0]["value"][1]) == 0
    assert 0 < float(query("Retention margin", "orders-consumer")[0]["value"][1]) <= 72 * 3600
    assert float(query("Instance retention", "orders-consumer")[0]["value"][1]) == 72 * 3600

    def caught_up() -> list[dict[str, Any]] | None:
        result = query("Catch-up ETA", "orders-consumer")
        return result if result and result[0]["value"][1] == "0" else None

    first = query("Catch-up ETA", "orders-consumer")
    assert first and first[0]["value"][1] in ("NaN", "0")  # NaN: "not shrinking" in the first minute
    wait_for(caught_up, 120, "orders-consumer's catch-up ETA of 0 (a minute of history)")
    consumed = query("Consume rate vs produce rate", "orders-consumer")
    exported = demo.query('alikafka_consumergroup_consume_rate{group="orders-consumer"}')
    assert {(r["metric"]["topic"], r["value"][1]) for r in consumed} == {
        (r["metric"]["topic"], r["value"][1]) for r in exported}


@pytest.mark.e2e
def test_topic_variable_keeps_the_groups_reading_it(demo: DemoPrometheus) -> None:
    """One topic chosen: the overview's group panels show exactly the groups that read it."""
    values, _ = resolve_variables(BOARDS["overview"], demo)
    topic_lag = demo.query("count by (topic) (count by (topic, instance_id, group) (alikafka_consumergroup_topic_lag))")
    readers = {r["metric"]["topic"]: int(float(r["value"][1])) for r in topic_lag}
    topic = min(readers, key=lambda t: (readers[t], t))
    assert 0 < readers[topic] < 31
    chosen = {**values, "topic": "(" + regex_escape(topic) + ")"}
    board = {p["title"]: p for p in data_panels(BOARDS["overview"])}
    count = demo.query(substitute(board["Groups"]["targets"][0]["expr"], chosen))
    assert float(count[0]["value"][1]) == readers[topic]
    table = demo.query(substitute(board["Groups by time lag"]["targets"][0]["expr"], chosen))
    expected = demo.query(f'group by (instance_id, group) (alikafka_consumergroup_topic_lag{{topic="{topic}"}})')
    assert {(r["metric"]["instance_id"], r["metric"]["group"]) for r in table} == {
        (r["metric"]["instance_id"], r["metric"]["group"]) for r in expected}


# kafka-lag-exporter's own Grafana dashboard, grafana/Kafka_Lag_Exporter_Dashboard.json of
# https://github.com/seglo/kafka-lag-exporter (commit 3fcb3c79f5a62745a167e9bc4cd92f0228cf9ad5, its last):
# the expressions of its variables (Grafana's query_result(), then a regex on the series' text) and of its
# lag panels, as written there. Its JVM panels read the JVM of that exporter, which this one does not have.
KLE_NAMESPACE = "kafka"
KLE_VARIABLES = (
    ("namespace", "kafka_consumergroup_group_lag", r'.*namespace="([^"]*).*'),
    ("cluster_name", 'kafka_consumergroup_group_lag{namespace="$namespace"}', r'.*cluster_name="([^"]*).*'),
    ("consumer_group", 'kafka_consumergroup_group_lag{namespace="$namespace",cluster_name="$cluster_name"}',
     r'.*group="([^"]*).*'),
)
KLE_SELECTOR = 'namespace="$namespace",cluster_name="$cluster_name",group=~"$consumer_group",group!=""'
KLE_PANELS = {
    "Consumer Group Max Lag Seconds": [f"topk(50, kafka_consumergroup_group_max_lag_seconds{{{KLE_SELECTOR}}})"],
    "Consumer Group Lag Partition Seconds": [f"topk(25, kafka_consumergroup_group_lag_seconds{{{KLE_SELECTOR}}})"],
    "Consumer Group Max Lag Offsets": [f"topk(50, kafka_consumergroup_group_max_lag{{{KLE_SELECTOR}}})"],
    "Consumer Group Lag Partition Offsets": [f"topk(25, kafka_consumergroup_group_lag{{{KLE_SELECTOR}}})"],
    "Consumer Group Lag In Time Per Group Over Offset Lag": [
        f"kafka_consumergroup_group_max_lag_seconds{{{KLE_SELECTOR}}}",
        f"kafka_consumergroup_group_max_lag{{{KLE_SELECTOR}}}"],
    "Consumer Group Lag in Time Per Group Over Summed Offsets": [
        f"max(kafka_consumergroup_group_lag_seconds{{{KLE_SELECTOR}}}) by (group)",
        f"sum(kafka_consumergroup_group_offset{{{KLE_SELECTOR}}})",
        f"sum((kafka_consumergroup_group_offset{{{KLE_SELECTOR}}} * 0)\n+ on(namespace,cluster_name,topic,partition)"
        ' group_left() kafka_partition_latest_offset{namespace="$namespace",cluster_name="$cluster_name"})'],
}


def query_result_text(result: dict[str, Any]) -> str:
    """A series as Grafana's query_result() gives it to a variable's regex: name{labels} value timestamp."""
    metric = dict(result["metric"])
    name = metric.pop("__name__", "")
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()))
    return f"{name}{{{labels}}} {result['value'][1]} {result['value'][0]}"


@pytest.mark.e2e
def test_kafka_lag_exporter_dashboard_queries_return_data(demo: DemoPrometheus) -> None:
    """With metrics.compat: [kafka_lag_exporter], kafka-lag-exporter's own dashboard works on the demo: each
    variable finds values, each lag panel query returns data (instant and range), and the numbers are ours."""
    values: dict[str, str] = {}
    for name, query, regex in KLE_VARIABLES:
        found = sorted({m.group(1) for r in demo.query(substitute(query, values))
                        if (m := re.fullmatch(regex, query_result_text(r)))})
        assert found, f"${name}: {query} finds no value"
        values[name] = found[0]
    assert values["namespace"] == KLE_NAMESPACE
    assert values["cluster_name"].startswith("alikafka_post-cn-demo")  # the instance ID
    values["consumer_group"] = ".*"  # the variable's All value
    problems = []
    for title, exprs in KLE_PANELS.items():
        for expr in exprs:
            query = substitute(expr, values)
            if not demo.query(query) or not demo.query_range(query, 10):
                problems.append(f"{title!r}: {query}: no data")
    assert not problems, "\n".join(problems)
    # the panels show this exporter's numbers: max lag seconds per group is the native max time lag
    selector = f'cluster_name="{values["cluster_name"]}"'
    diff = demo.query(f"kafka_consumergroup_group_max_lag_seconds{{{selector}}} - on(group) "
                      f'alikafka_consumergroup_max_lag_seconds{{instance_id="{values["cluster_name"]}"}}')
    assert diff and all(float(r["value"][1]) == 0 for r in diff)
