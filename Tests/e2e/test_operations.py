"""Operations: /metrics values after known traffic (and promtool's lint), Triton's /stats, the
status JSON, the access log with request ids, and the status page in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from swerve_e2e import assert_error, assert_ok, v2_input

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Samples by (name, labels)."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(match.group(3) or ""))
        samples[(match.group(1), labels)] = float(match.group(4))
    return samples


def value(samples, name: str, **labels) -> float:
    key = (name, frozenset((k, str(v)) for k, v in labels.items()))
    assert key in samples, f"no sample {name}{labels}; samples of {name}: " + str(
        [dict(k[1]) for k in samples if k[0] == name][:20])
    return samples[key]


def mlp_request(rows: int, seed: int) -> dict:
    x = np.random.default_rng(seed).standard_normal((rows, 8)).astype(np.float32)
    return {"inputs": [v2_input("input", x)]}


@pytest.fixture(scope="module")
def traffic_server(server_factory):
    """A server of its own with known traffic sent to it."""
    srv = server_factory(["--access-log"])
    assert srv.ready_at_start
    for rows in (1, 2, 3, 4, 5):  # 5 successes on mlp v1, 15 rows
        assert_ok(srv.post("/v2/models/mlp/versions/1/infer", json=mlp_request(rows, rows)))
    for _ in range(3):  # 3 TF Serving successes on digits, 1 row each
        assert_ok(srv.post("/v1/models/digits:predict", json={"instances": [[0.0] * 64]}))
    bad = mlp_request(2, 0)
    bad["inputs"][0]["datatype"] = "INT64"
    assert_error(srv.post("/v2/models/mlp/versions/1/infer", json=bad), 400)  # bad input
    assert_error(srv.post("/v2/models/mlp/versions/1/infer", data=b"{not json"), 400)  # bad input
    assert_error(srv.post("/v2/models/nope/infer", json=mlp_request(1, 0)), 404)  # unknown model
    assert_error(srv.get("/no/such/endpoint"), 404)  # unmatched route
    for _ in range(2):
        assert srv.get("/v2/health/live").status_code == 200
    resp = srv.post("/v2/models/mlp/versions/1/infer", json={"id": "req-42", **mlp_request(1, 9)},
                    headers={"X-Request-ID": "hdr-7"})
    assert assert_ok(resp)["id"] == "req-42"
    resp = srv.post("/v2/models/mlp/versions/2/infer", json={"id": "only-body-id", **mlp_request(1, 9)})
    assert assert_ok(resp)["id"] == "only-body-id"
    return srv


def test_metric_values_equal_the_traffic_sent(traffic_server):
    resp = traffic_server.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    s = parse_metrics(resp.text)
    mlp1 = {"model": "mlp", "version": "1"}
    # 5 + the one with an id = 6 successes, 2 bad inputs.
    assert value(s, "swerve_requests_total", **mlp1, protocol="v2", outcome="success") == 6
    assert value(s, "swerve_requests_total", **mlp1, protocol="v2", outcome="bad_input") == 2
    for outcome in ("not_found", "overloaded", "timeout", "internal"):
        assert value(s, "swerve_requests_total", **mlp1, protocol="v2", outcome=outcome) == 0
    assert value(s, "swerve_requests_total", model="digits", version="1", protocol="v1", outcome="success") == 3
    assert value(s, "swerve_requests_total", model="", version="", protocol="v2", outcome="not_found") == 1
    assert value(s, "swerve_inference_rows_total", **mlp1) == 16
    assert value(s, "swerve_batches_total", **mlp1) == 6
    assert value(s, "swerve_request_duration_seconds_count", **mlp1) == 8
    assert value(s, "swerve_compute_duration_seconds_count", **mlp1) == 6
    assert value(s, "swerve_queue_duration_seconds_count", **mlp1) == 6
    # Batch sizes 1, 2, 3, 4, 5, 1.
    assert value(s, "swerve_batch_size_bucket", **mlp1, le="1.0") == 2
    assert value(s, "swerve_batch_size_bucket", **mlp1, le="2.0") == 3
    assert value(s, "swerve_batch_size_bucket", **mlp1, le="4.0") == 5
    assert value(s, "swerve_batch_size_bucket", **mlp1, le="8.0") == 6
    assert value(s, "swerve_batch_size_sum", **mlp1) == 16
    assert value(s, "swerve_pending_requests", **mlp1) == 0
    # HTTP requests by route pattern, method and status.
    versioned = "/v2/models/{model}/versions/{version}/infer"
    assert value(s, "swerve_http_requests_total", route=versioned, method="POST", status="200") == 7
    assert value(s, "swerve_http_requests_total", route=versioned, method="POST", status="400") == 2
    assert value(s, "swerve_http_requests_total", route="/v2/models/{model}/infer", method="POST", status="404") == 1
    assert value(s, "swerve_http_requests_total", route="/v1/models/{model}:predict", method="POST", status="200") == 3
    assert value(s, "swerve_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value(s, "swerve_http_requests_total", route="/v2/health/live", method="GET", status="200") >= 2
    # Loads and versions by state (the test store: mlp serves 2 versions, broken fails).
    assert value(s, "swerve_model_versions", model="mlp", state="AVAILABLE") == 2
    assert value(s, "swerve_model_versions", model="broken", state="FAILED") == 1
    assert value(s, "swerve_model_versions", model="broken", state="AVAILABLE") == 0
    assert value(s, "swerve_model_loads_total", model="mlp", outcome="success") == 2
    assert value(s, "swerve_model_loads_total", model="broken", outcome="failure") == 1
    assert value(s, "swerve_model_load_duration_seconds_count", model="mlp") == 2
    # Process metrics: this very process.
    pid = traffic_server.process.proc.pid
    rss_pages = int(open(f"/proc/{pid}/statm").read().split()[1])
    rss = value(s, "process_resident_memory_bytes")
    assert 0.5 < rss / (rss_pages * 4096) < 2
    assert value(s, "process_open_fds") >= 3
    assert value(s, "process_max_fds") >= value(s, "process_open_fds")
    assert abs(value(s, "process_start_time_seconds") - time.time()) < 3600
    assert value(s, "process_cpu_seconds_total") > 0
    assert value(s, "process_virtual_memory_bytes") > rss


def test_promtool_finds_no_problem(traffic_server):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed; `make test-deps` installs it (Debian package prometheus)",
                    pytrace=False)
    text = traffic_server.get("/metrics").text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        f"promtool check metrics:\n{result.stdout}{result.stderr}")


def test_triton_stats(traffic_server):
    body = assert_ok(traffic_server.get("/v2/models/mlp/versions/1/stats"))
    (stats,) = body["model_stats"]
    assert (stats["name"], stats["version"]) == ("mlp", "1")
    assert stats["inference_count"] == 16 and stats["execution_count"] == 6
    assert stats["inference_stats"]["success"]["count"] == 6
    assert stats["inference_stats"]["fail"]["count"] == 2
    assert stats["inference_stats"]["compute_infer"]["count"] == 6
    assert stats["inference_stats"]["success"]["ns"] > 0 and stats["last_inference"] > 0
    every = assert_ok(traffic_server.get("/v2/models/stats"))["model_stats"]
    assert {("mlp", "1"), ("mlp", "2"), ("digits", "1")} <= {(m["name"], m["version"]) for m in every}
    assert [m["version"] for m in assert_ok(traffic_server.get("/v2/models/mlp/stats"))["model_stats"]] == ["1", "2"]
    assert_error(traffic_server.get("/v2/models/nope/stats"), 404)


def test_status_json(traffic_server):
    body = assert_ok(traffic_server.get("/status.json"))
    assert body["server"]["ready"] is True and body["server"]["draining"] is False
    models = {m["name"]: m for m in body["models"]}
    assert {"mlp", "digits", "broken"} <= set(models)
    (broken,) = models["broken"]["versions"]
    assert broken["state"] == "FAILED" and broken["error"]
    mlp1 = next(v for v in models["mlp"]["versions"] if v["version"] == "1")
    assert mlp1["requests"] == 8 and mlp1["failures"] == 2 and mlp1["rows"] == 16
    assert len(mlp1["series"]["rps"]) == body["window_s"] == 60
    assert all(len(mlp1["series"][k]) == 60 for k in ("p50_ms", "p90_ms", "p99_ms", "queue_ms", "batch", "errors"))


def test_access_log_lines_carry_request_ids(traffic_server):
    lines = [line for line in traffic_server.process.output.splitlines() if "event=access" in line]
    assert any("path=/no/such/endpoint" in line and "status=404" in line for line in lines), lines[-5:]
    header = [line for line in lines if "request_id=hdr-7" in line]
    assert len(header) == 1 and "method=POST" in header[0] and "status=200" in header[0]
    assert re.search(r"bytes=\d+", header[0]) and re.search(r"duration_ms=[0-9.]+", header[0])
    assert any("request_id=only-body-id" in line for line in lines)


def test_json_logs_with_access_log(server_factory):
    srv = server_factory(["--access-log", "--log-format", "json", "--no-metrics"])
    assert srv.get("/v2/health/live").status_code == 200
    assert_error(srv.get("/metrics"), 404)
    deadline = time.monotonic() + 10
    while "/v2/health/live" not in srv.process.output and time.monotonic() < deadline:
        time.sleep(0.02)
    events = [json.loads(line) for line in srv.process.output.splitlines() if line.startswith("{")]
    access = [e for e in events if e.get("event") == "access" and e.get("path") == "/v2/health/live"]
    assert access and access[0]["status"] == "200" and access[0]["method"] == "GET"
    assert any(e.get("event") == "model_loaded" and "duration_ms" in e for e in events)


def chromium(url: str, *flags: str) -> subprocess.CompletedProcess:
    if shutil.which("chromium") is None:
        pytest.fail("chromium is not installed; `make test-deps` installs it (Debian package chromium)",
                    pytrace=False)
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=4000", *flags, url],
        capture_output=True, text=True, timeout=120)


def test_status_page_renders_the_models_without_script_errors(traffic_server):
    page = traffic_server.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert not re.search(r'(src|href)="(https?:)?//', page.text), "the page must not load external resources"
    result = chromium(traffic_server.base_url + "/", "--dump-dom")
    dom = result.stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, f"no <body> in the dumped DOM:\n{dom[:500]}\n{result.stderr[-2000:]}"
    attributes = dict(re.findall(r'data-([a-z]+)="([^"]*)"', body.group(1)))
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert attributes.get("errors") == "0" and not console, f"script errors: {attributes}\n" + "\n".join(console)
    assert int(attributes.get("rendered", "0")) >= 1, f"the page never rendered the status: {attributes}"
    assert {"mlp", "digits", "broken"} <= set(attributes["models"].split(","))
    table = dom[dom.index('id="models"'):]
    for text in ("digits", "mlp", "AVAILABLE", "FAILED"):
        assert text in table, f"{text} missing from the models table"
    assert dom.count("<path") >= 3, "the charts drew no lines"
