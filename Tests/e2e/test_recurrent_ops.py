"""LSTM, GRU and RNN nodes built with onnx.helper, served by swerve and compared with onnxruntime on
the same files: the options real exports rarely use (clip, custom activations with alpha/beta,
peepholes, input_forget, linear_before_reset, sequence_lens, bidirectional and reverse). Layout 1
is not compared: onnxruntime's CPU kernels refuse it (the unit tests cover it against a scalar
reference). Weights are initializers, so swerve packs them at load.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from swerve_e2e import assert_ok, finish_server, start_server, v2_input

HIDDEN, INPUT, SEQ, BATCH = 5, 4, 7, 3
LENGTHS = [7, 2, 5]

CASES = {
    "lstm_clip_acts": ("LSTM", dict(direction="bidirectional", clip=0.8,
                                    activations=["HardSigmoid", "ScaledTanh", "Affine", "Softsign", "LeakyRelu", "Elu"],
                                    activation_alpha=[0.3, 0.9, 0.5, 0.2, 0.7], activation_beta=[0.4, 1.3, 0.1]), True, False),
    "lstm_input_forget": ("LSTM", dict(direction="reverse", input_forget=1, clip=2.0), True, True),
    "lstm_lengths": ("LSTM", dict(direction="bidirectional"), True, True),
    "gru_lbr_acts": ("GRU", dict(direction="bidirectional", linear_before_reset=1, clip=0.9,
                                 activations=["Sigmoid", "Softplus", "HardSigmoid", "ThresholdedRelu"],
                                 activation_alpha=[0.25, 0.1], activation_beta=[0.45]), False, True),
    "gru_relu": ("GRU", dict(direction="bidirectional", activations=["Sigmoid", "Relu", "Sigmoid", "Tanh"]), False, False),
    "rnn_acts": ("RNN", dict(direction="bidirectional", clip=1.5, activations=["Affine", "ThresholdedRelu"],
                             activation_alpha=[0.5, 0.1], activation_beta=[0.2]), False, True),
}


def make_model(op: str, attrs: dict, peepholes: bool, lengths: bool, rng: np.random.Generator) -> onnx.ModelProto:
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    inits = [numpy_helper.from_array((rng.standard_normal((dirs, gates * HIDDEN, INPUT)) * 0.7).astype(np.float32), "w"),
             numpy_helper.from_array((rng.standard_normal((dirs, gates * HIDDEN, HIDDEN)) * 0.7).astype(np.float32), "r"),
             numpy_helper.from_array((rng.standard_normal((dirs, 2 * gates * HIDDEN)) * 0.5).astype(np.float32), "b")]
    inputs = ["x", "w", "r", "b", "", ""]
    if lengths:
        inits.append(numpy_helper.from_array(np.array(LENGTHS, np.int32), "lens"))
        inputs[4] = "lens"
    if op == "LSTM":
        inputs += ["", ""]
        if peepholes:
            inits.append(numpy_helper.from_array(rng.standard_normal((dirs, 3 * HIDDEN)).astype(np.float32), "p"))
            inputs[7] = "p"
    while inputs[-1] == "":
        inputs.pop()
    outputs = ["y", "y_h"] + (["y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, inputs, outputs, hidden_size=HIDDEN, **attrs)
    graph = helper.make_graph([node], op.lower(), [helper.make_tensor_value_info("x", TensorProto.FLOAT, [SEQ, BATCH, INPUT])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def recurrent_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("recurrent") / "models"
    rng = np.random.default_rng(3)
    for name, (op, attrs, peepholes, lengths) in CASES.items():
        (store / name / "1").mkdir(parents=True)
        onnx.save(make_model(op, attrs, peepholes, lengths, rng), str(store / name / "1" / "model.onnx"))
    server = start_server(store)
    yield store, server
    finish_server(server)


@pytest.mark.parametrize("name", sorted(CASES))
def test_recurrent_node_matches_onnxruntime(recurrent_store, name):
    store, server = recurrent_store
    assert server.get(f"/v2/models/{name}/ready").status_code == 200, server.process.output[-2000:]
    x = np.random.default_rng(11).standard_normal((SEQ, BATCH, INPUT)).astype(np.float32)
    session = ort.InferenceSession(str(store / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    expected = dict(zip(names, session.run(names, {"x": x})))
    for run in ("first run", "shape plan"):
        answer = assert_ok(server.post(f"/v2/models/{name}/infer", json={"inputs": [v2_input("x", x)]}))
        got = {o["name"]: o for o in answer["outputs"]}
        assert set(got) == set(names)
        for out_name, want in expected.items():
            assert got[out_name]["shape"] == list(want.shape)
            values = np.asarray(got[out_name]["data"], dtype=np.float64).reshape(want.shape)
            np.testing.assert_allclose(values, want, rtol=1e-4, atol=1e-5, err_msg=f"{name}.{out_name} ({run})")
