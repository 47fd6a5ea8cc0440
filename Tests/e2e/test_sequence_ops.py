"""Sequences inside served models: the list-building pattern of scripted PyTorch code (SequenceEmpty,
SequenceInsert in a Loop body, ConcatFromSequence after it) and SplitToSequence/SequenceAt, served
over HTTP and compared with onnxruntime on the same file. A model whose output is a sequence
cannot be served (the protocols carry tensors): its version fails to load with a reason saying so.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from store_e2e import index
from swerve_e2e import assert_ok, finish_server, start_server, v2_input


def list_model() -> onnx.ModelProto:
    """y = concat([tanh(x * (i + 1)) for i in range(m)] + split(x)[-1]) along axis 0; n = the list's length."""
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["i_f"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["i_f", "one"], ["k"]),
         helper.make_node("Mul", ["x", "k"], ["xk"]),
         helper.make_node("Tanh", ["xk"], ["part"]),
         helper.make_node("SequenceInsert", ["parts_in", "part"], ["parts_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_sequence_value_info("parts_in", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_sequence_value_info("parts_out", TensorProto.FLOAT, [None])],
        [numpy_helper.from_array(np.array(1, np.float32), "one")])
    nodes = [
        helper.make_node("SequenceEmpty", [], ["parts0"], dtype=TensorProto.FLOAT),
        helper.make_node("Loop", ["m", "go", "parts0"], ["parts"], body=body),
        helper.make_node("SplitToSequence", ["x"], ["rows"], axis=0),
        helper.make_node("SequenceAt", ["rows", "minus_one"], ["last"]),
        helper.make_node("SequenceInsert", ["parts", "last"], ["all"]),
        helper.make_node("ConcatFromSequence", ["all"], ["y"], axis=0),
        helper.make_node("SequenceLength", ["all"], ["n"]),
    ]
    graph = helper.make_graph(
        nodes, "lists",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", 4]),
         helper.make_tensor_value_info("m", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["out_rows", 4]),
         helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [numpy_helper.from_array(np.array(True), "go"), numpy_helper.from_array(np.array(-1, np.int64), "minus_one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def sequence_output_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("SplitToSequence", ["x"], ["rows"], axis=0)], "rows",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_sequence_value_info("rows", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def sequence_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("sequences") / "models"
    for name, model in {"lists": list_model(), "rows": sequence_output_model()}.items():
        (store / name / "1").mkdir(parents=True)
        onnx.save(model, str(store / name / "1" / "model.onnx"))
    server = start_server(store)
    yield store, server
    finish_server(server)


@pytest.mark.parametrize("rows,m", [(2, 3), (5, 1), (1, 0)])
def test_list_building_model_matches_onnxruntime(sequence_store, rows, m):
    store, server = sequence_store
    x = np.random.default_rng(rows).standard_normal((rows, 4)).astype(np.float32)
    feeds = {"x": x, "m": np.array(m, np.int64)}
    session = ort.InferenceSession(str(store / "lists" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    want_y, want_n = session.run(["y", "n"], feeds)
    for run in ("first run", "shape plan"):
        answer = assert_ok(server.post("/v2/models/lists/infer", json={
            "inputs": [v2_input("x", x), {"name": "m", "datatype": "INT64", "shape": [], "data": [m]}]}))
        got = {o["name"]: o for o in answer["outputs"]}
        assert got["y"]["shape"] == list(want_y.shape), run
        np.testing.assert_allclose(np.asarray(got["y"]["data"], np.float32).reshape(want_y.shape), want_y,
                                   rtol=1e-5, atol=1e-6, err_msg=run)
        assert got["n"]["data"] == [int(want_n)], run


def test_a_sequence_output_is_refused_with_a_reason(sequence_store):
    _, server = sequence_store
    assert server.get("/v2/models/rows/ready").status_code != 200
    reason = next(e.get("reason", "") for e in index(server) if e["name"] == "rows")
    assert "output 'rows' is a sequence" in reason and "tensors only" in reason, reason
