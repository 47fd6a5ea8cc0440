#!/usr/bin/env python3
"""Writes the model store's narrow-type fixtures into Tests/ModelStoreTests/Fixtures/.

- `narrow_inside.onnx`: `y` FP32 = Cast(Cast(`x` FP32 [2, 3], to=FLOAT8E4M3FN), to=FLOAT) plus an
  INT4 initializer widened by a Cast: float8 and int4 inside the graph, FP32 at its edges (served).
- `narrow_output.onnx`: the same graph whose output `y8` is the FLOAT8E4M3FN value itself, which no
  inference protocol has a datatype for (refused at load, naming the output and the fix).

Generated files (deterministic); rerun to regenerate:

    /work/main/.venv/bin/python tools/make_narrow_fixtures.py
"""
import os

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto as T, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ModelStoreTests", "Fixtures")


def model(narrow_output: bool) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.array([-8, 7, 3], ml_dtypes.int4), "w4")
    nodes = [
        helper.make_node("Cast", ["x"], ["y8"], to=T.FLOAT8E4M3FN),
        helper.make_node("Cast", ["y8"], ["y"], to=T.FLOAT),
        helper.make_node("Cast", ["w4"], ["w"], to=T.FLOAT),
        helper.make_node("Add", ["y", "w"], ["z"]),
    ]
    outputs = [helper.make_tensor_value_info("z", T.FLOAT, [2, 3])]
    if narrow_output:
        outputs.append(helper.make_tensor_value_info("y8", T.FLOAT8E4M3FN, [2, 3]))
    g = helper.make_graph(nodes, "narrow", [helper.make_tensor_value_info("x", T.FLOAT, [2, 3])], outputs,
                          initializer=[w])
    m = helper.make_model(g, producer_name="swerve-fixtures", opset_imports=[helper.make_opsetid("", 25)])
    m.ir_version = 11
    onnx.checker.check_model(m, full_check=True)
    return m


def main():
    os.makedirs(ROOT, exist_ok=True)
    onnx.save_model(model(False), os.path.join(ROOT, "narrow_inside.onnx"))
    onnx.save_model(model(True), os.path.join(ROOT, "narrow_output.onnx"))


if __name__ == "__main__":
    main()
