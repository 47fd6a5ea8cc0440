"""deploy/grafana: the dashboard parses, covers what the issue asks for, and every metric it queries
exists in the `/metrics` output of the real binary after some traffic."""

from __future__ import annotations

import json
import re

import requests
from prometheus_client.parser import text_string_to_metric_families

from deploy_support import GRAFANA_DASHBOARD, Daemon, predict_digit

# Identifiers in PromQL that are metric names: ours and the standard process_* family.
METRIC = re.compile(r"\b((?:swerve|process)_[a-z0-9_]+)\b")


def expressions(dashboard: dict) -> list[str]:
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append(target["expr"])
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            found.append(query["query"])
    return found


def queried_metrics(dashboard: dict) -> set[str]:
    return {name for expr in expressions(dashboard) for name in METRIC.findall(expr)}


def test_dashboard_parses_and_covers_the_issue():
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    exprs = "\n".join(expressions(dashboard))
    assert "rate(swerve_requests_total" in exprs, "throughput"
    for p in ("0.5", "0.9", "0.99"):
        assert f"histogram_quantile({p}, sum by (model, le) (rate(swerve_request_duration_seconds_bucket" in exprs
    assert "swerve_queue_duration_seconds_bucket" in exprs, "queue wait"
    assert "swerve_batch_size" in exprs, "batch size"
    assert 'outcome!="success"' in exprs and "by (outcome)" in exprs, "errors by reason"
    assert "swerve_model_versions" in exprs, "loaded versions"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_queried_metric_is_exported(store):
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    wanted = queried_metrics(dashboard)
    daemon = Daemon(["swerve", "serve"], {"SWERVE_MODEL_STORE": str(store), "SWERVE_HOST": "127.0.0.1",
                                          "SWERVE_PORT": "0", "SWERVE_MANAGEMENT_PORT": "0",
                                          "SWERVE_POLL_INTERVAL": "0"})
    try:
        daemon.wait_ready()
        # Traffic so that per-model series exist: successes, a bad input, an unknown model.
        for _ in range(3):
            assert predict_digit(daemon.url) == 6
        requests.post(daemon.url + "/v2/models/digits/infer", data=b'{"inputs": 1}', timeout=10)
        requests.post(daemon.url + "/v2/models/nope/infer", data=b"{}", timeout=10)
        resp = requests.get(daemon.url + "/metrics", timeout=10)
        assert resp.status_code == 200, (f"GET /metrics answered {resp.status_code} ({resp.text[:200]}); "
                                         f"the dashboard needs Swerve's Prometheus metrics")
        exported = {sample.name for family in text_string_to_metric_families(resp.text)
                    for sample in family.samples}
    finally:
        daemon.stop()
    missing = sorted(wanted - exported)
    assert not missing, f"the dashboard queries metrics /metrics does not export: {missing}"


def test_metric_names_are_found_in_expressions():
    """The extraction the check relies on sees through PromQL syntax."""
    expr = 'histogram_quantile(0.9, sum by (le) (rate(swerve_x_bucket{model=~"$m"}[5m]))) / process_open_fds'
    assert METRIC.findall(expr) == ["swerve_x_bucket", "process_open_fds"]
