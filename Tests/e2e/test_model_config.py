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
