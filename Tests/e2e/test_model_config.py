"""config.json through the real server: the schema in docs/ matches what the parser accepts,
input overrides pin dims, and a broken config keeps the previous state."""

from __future__ import annotations

import json
import re

from store_e2e import publish, stamped_model, start, wait_until, write_config
from swerve_e2e import REPO_ROOT, finish_server

SCHEMA = json.loads((REPO_ROOT / "docs" / "model-config.schema.json").read_text())


def test_schema_lists_exactly_the_accepted_fields(tmp_path):
    store = tmp_path / "models"
    publish(store, "m", 1, stamped_model(1))
    (store / "m" / "config.json").write_text('{"no_such_field": 1}')
    server = start(store, ["--poll-interval", "0"])
    try:
        error = server.get("/v2/models/m").json()["error"]
        match = re.search(r"unknown field 'no_such_field'; the fields are ([a-z_, ]+)", error)
        assert match, error
        assert sorted(f.strip() for f in match.group(1).split(",")) == sorted(SCHEMA["properties"])
    finally:
        finish_server(server)


def test_schema_lists_exactly_the_accepted_nested_fields(tmp_path):
    # Unknown keys are refused at every level, and the schema lists what each level accepts.
    cases = {
        "dynamic_batching": ('{"max_batch_size": 4, "dynamic_batching": {"no_such_field": 1}}',
                             SCHEMA["properties"]["dynamic_batching"]["properties"]),
        "instance_group[0]": ('{"instance_group": [{"no_such_field": 1}]}',
                              SCHEMA["properties"]["instance_group"]["items"]["properties"]),
        "input[0]": ('{"input": [{"name": "x", "no_such_field": 1}]}', SCHEMA["$defs"]["tensors"]["items"]["properties"]),
    }
    store = tmp_path / "models"
    for i, (where, (text, _)) in enumerate(cases.items()):
        publish(store, f"m{i}", 1, stamped_model(1))
        (store / f"m{i}" / "config.json").write_text(text)
    server = start(store, ["--poll-interval", "0"])
    try:
        for i, (where, (_, accepted)) in enumerate(cases.items()):
            error = server.get(f"/v2/models/m{i}").json()["error"]
            match = re.search(rf"unknown field 'no_such_field' in '{re.escape(where)}'; its fields are ([a-z_, ]+)", error)
            assert match, error
            assert sorted(f.strip() for f in match.group(1).split(",")) == sorted(accepted), where
    finally:
        finish_server(server)


def test_input_dims_override_pins_a_symbolic_dimension(tmp_path):
    store = tmp_path / "models"
    publish(store, "m", 1, stamped_model(1))
    write_config(store, "m", '{"input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [2, 4]}]}')
    server = start(store, ["--poll-interval", "0"])
    try:
        meta = server.get("/v2/models/m").json()
        assert meta["inputs"][0]["shape"] == [2, 4], meta
        one_row = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}]}
        assert server.post("/v2/models/m/infer", json=one_row).status_code == 400
        two_rows = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [0] * 8}]}
        assert server.post("/v2/models/m/infer", json=two_rows).json()["outputs"][0]["data"] == [1] * 8
    finally:
        finish_server(server)


def test_a_config_that_does_not_validate_keeps_the_previous_state(tmp_path):
    store = tmp_path / "models"
    publish(store, "m", 1, stamped_model(1))
    publish(store, "m", 2, stamped_model(2))
    write_config(store, "m", '{"version_policy": {"all": {}}}')
    server = start(store, ["--poll-interval", "0.1"])
    try:
        write_config(store, "m", '{"version_policy": {"latest": 0}}')
        wait_until("config_failed logged", lambda: "config_failed" in server.process.output, server)
        status = server.get("/v1/models/m").json()["model_version_status"]
        assert {s["version"]: s["state"] for s in status} == {"2": "AVAILABLE", "1": "AVAILABLE"}
        assert "version_policy.latest" in server.process.output
    finally:
        finish_server(server)


def needs_three_samples_model() -> bytes:
    """y = Conv(x, w) with x: [1, 1, n] and a 3-tap kernel, no padding: n must be at least 3, so a
    warm-up with the made-up n = 1 fails while real requests work (as wav2vec2's first convolution)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "conv1d",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "m"])],
        [numpy_helper.from_array(np.ones([1, 1, 3], dtype=np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_a_warm_up_on_made_up_shapes_that_fails_only_warns(tmp_path):
    store = tmp_path / "models"
    publish(store, "made_up", 1, needs_three_samples_model())
    publish(store, "declared", 1, needs_three_samples_model())
    write_config(store, "declared", '{"input": [{"name": "x", "dims": [1, 1, 2]}]}')
    server = start(store, ["--poll-interval", "0"])
    try:
        # Made-up shapes (n = 1): the version serves, the failed warm-up is its reason.
        meta = server.get("/v2/models/made_up")
        assert meta.status_code == 200, meta.text
        status = server.get("/v1/models/made_up").json()["model_version_status"][0]
        assert status["state"] == "AVAILABLE", status
        assert "warm-up" in status["status"]["error_message"] and "serves anyway" in status["status"]["error_message"]
        body = {"inputs": [{"name": "x", "shape": [1, 1, 5], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]}
        resp = server.post("/v2/models/made_up/infer", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json()["outputs"][0]["data"] == [6, 9, 12]
        # Shapes the user declared (n = 2, too short) gate the load.
        error = server.get("/v2/models/declared").json()["error"]
        assert "warm-up" in error, error
        assert server.post("/v2/models/declared/infer", json=body).status_code in (400, 503)
    finally:
        finish_server(server)


def test_each_version_divides_the_thread_budget_among_its_own_instances(tmp_path):
    # --threads 4: a version with 2 instances (config.json) runs each batch on 2 threads, one with
    # none configured on all 4, one with more instances than threads on 1; the share is reported.
    store = tmp_path / "models"
    for name, config in [("two", '{"instance_group": [{"kind": "cpu", "count": 2}]}'), ("one", None),
                         ("eight", '{"instance_group": [{"count": 3}, {"count": 5}]}')]:
        publish(store, name, 1, stamped_model(1))
        if config:
            write_config(store, name, config)
    server = start(store, ["--poll-interval", "0", "--threads", "4"])
    try:
        for name, instances, threads in [("two", 2, "2"), ("one", 1, "4"), ("eight", 8, "1")]:
            config = server.get(f"/v2/models/{name}/config").json()
            assert config["instance_group"][0]["count"] == instances, config
            assert config["parameters"]["intra_op_thread_count"] == {"string_value": threads}, config
            out = server.post(f"/v2/models/{name}/infer", json={
                "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
            assert out.status_code == 200, out.text
        loaded = [line for line in server.process.output.splitlines() if "event=model_loaded" in line]
        assert any("model=two" in line and "threads=2" in line and "instances=2" in line for line in loaded), loaded
    finally:
        finish_server(server)
