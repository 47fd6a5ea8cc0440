"""Writes the benchmark models into a model store: a compute-bound MLP 1024-4096-4096-1000 under
two configurations (batching off, and on), and a tiny 10-input model for the overhead figure."""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mlp(path: Path, sizes: list[int]) -> None:
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        inits += [numpy_helper.from_array((rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(np.zeros(b, np.float32), f"b{i}")]
        out = "y" if i == len(sizes) - 2 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [out + ("" if out == "y" else "_pre")]))
        if out != "y":
            nodes.append(helper.make_node("Relu", [out + "_pre"], [out]))
        prev = out
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", sizes[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", sizes[-1]])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path / "model.onnx"))


store = Path(sys.argv[1])
mlp(store / "big_off" / "1", [1024, 4096, 4096, 1000])
(store / "big_on").mkdir(parents=True, exist_ok=True)
(store / "big_on" / "1").symlink_to((store / "big_off" / "1").resolve())
(store / "big_on" / "config.json").write_text(json.dumps(
    {"max_batch_size": 64, "dynamic_batching": {"max_queue_delay_us": 2000}}))
(store / "big_adaptive").mkdir(parents=True, exist_ok=True)
(store / "big_adaptive" / "1").symlink_to((store / "big_off" / "1").resolve())
(store / "big_adaptive" / "config.json").write_text(json.dumps(
    {"max_batch_size": 64, "dynamic_batching": {"adaptive": True}}))
mlp(store / "tiny_off" / "1", [10, 10])
(store / "tiny_on").mkdir(parents=True, exist_ok=True)
(store / "tiny_on" / "1").symlink_to((store / "tiny_off" / "1").resolve())
(store / "tiny_on" / "config.json").write_text(json.dumps({"max_batch_size": 64, "dynamic_batching": {"max_queue_delay_us": 0}}))
