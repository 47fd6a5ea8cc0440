#!/usr/bin/env python3
"""Write the small models of the end-to-end test model store `Tests/e2e/models/`.

Layout `<name>/<version>/model.onnx`:

- `mlp/1`, `mlp/2`   float MLP `input` FP32 [batch, 8] -> `output` FP32 [batch, 4], two
                     versions with different weights (TorchScript exporter, opset 17), and
                     `mlp/config.json` with `{"version_policy": {"all": {}}}` so both are served.
- `mlp_latest/1`, `mlp_latest/2`  the same two files without a config.json: the default
                     policy (latest 1) serves only version 2.
- `dynamo_mlp/1`     float MLP `x` FP32 [batch, 6] -> `y` FP32 [batch, 3] exported by torch's
                     default (dynamo) exporter, every initializer in `model.onnx.data`.
- `int_ops/1`        onnx.helper graph: `sum` = Add(`a` INT64 [-1,3], `b` INT64 [3]),
                     `c2` = Mul(`c`, `c`) INT32 [-1], `y` = Relu(`x` FP32 [-1,4]).
- `multi_rows/1`     like `int_ops` but every input batched, for the TF Serving row form with
                     several inputs: `twice` = Add(`a`, `a`) INT64 [-1,3], `c2` = Mul(`c`, `c`)
                     INT32 [-1], `y` = Relu(`x` FP32 [-1,4]).
- `bool_model/1`     `same` = Identity(`flags` BOOL [-1,2]).
- `broken/1`         garbage bytes: a model that fails to load.

Run with the export environment (needs torch and onnxscript):

    /work/main/.venv-export/bin/python tools/make_test_models.py

Each model is checked with onnx (operator allow-list, checker) and onnxruntime before the
script finishes; it fails loudly otherwise. Output is deterministic (fixed seeds).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

REPO = Path(__file__).resolve().parent.parent
STORE = REPO / "Tests" / "e2e" / "models"
MAX_STORE_BYTES = 300 * 1024

TORCHSCRIPT_OPS = {"Gemm", "MatMul", "Add", "Relu", "Tanh", "Sigmoid", "Flatten", "Reshape",
                   "Identity", "Constant"}
DYNAMO_OPS = {"Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Softmax",
              "Flatten", "Reshape", "Identity", "Dropout", "Constant", "ArgMax"}
# onnxruntime in /work/main/.venv reads this IR version; keep hand-built models conservative.
HELPER_IR_VERSION = 8
HELPER_OPSET = 17


def fail(message: str) -> None:
    print(f"make_test_models: error: {message}", file=sys.stderr)
    sys.exit(1)


def version_dir(name: str, version: int) -> Path:
    path = STORE / name / str(version)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_ops(path: Path, allowed: set[str]) -> onnx.ModelProto:
    proto = onnx.load(str(path), load_external_data=False)
    ops = {node.op_type for node in proto.graph.node}
    extra = ops - allowed
    if extra:
        fail(f"{path.relative_to(REPO)} uses operators outside the allowed set: {sorted(extra)}; "
             f"allowed: {sorted(allowed)}")
    onnx.checker.check_model(str(path), full_check=True)
    return proto


def check_runs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


class SmallMLP(torch.nn.Module):
    """8 -> 16 -> ReLU -> 4, for the `mlp` model's two versions."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(8, 16)
        self.out = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


class DynamoMLP(torch.nn.Module):
    """6 -> 12 -> Tanh -> (Dropout, a no-op in eval) -> 3 -> Softmax, for `dynamo_mlp`."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(6, 12)
        self.drop = torch.nn.Dropout(0.1)
        self.out = torch.nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.out(self.drop(torch.tanh(self.hidden(x)))), dim=-1)


def make_mlp(version: int, seed: int) -> np.ndarray:
    torch.manual_seed(seed)
    model = SmallMLP().eval()
    path = version_dir("mlp", version) / "model.onnx"
    torch.onnx.export(
        model,
        (torch.zeros(2, 8),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
    )
    check_ops(path, TORCHSCRIPT_OPS)
    x = np.random.default_rng(seed).standard_normal((5, 8)).astype(np.float32)
    (got,) = check_runs(path, {"input": x})
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    if not np.allclose(got, want, rtol=1e-5, atol=1e-6):
        fail(f"mlp/{version}: onnxruntime output differs from torch")
    return got


def make_dynamo_mlp() -> None:
    torch.manual_seed(3)
    model = DynamoMLP().eval()
    directory = version_dir("dynamo_mlp", 1)
    path = directory / "model.onnx"
    for stale in directory.iterdir():
        stale.unlink()
    batch = torch.export.Dim("batch")
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model,
            (torch.zeros(2, 6),),
            str(exported),
            dynamo=True,
            opset_version=18,
            input_names=["x"],
            output_names=["y"],
            dynamic_shapes=({0: batch},),
            external_data=True,
            optimize=True,
            verbose=False,
        )
        # The exporter only moves initializers above a size threshold into the .data file
        # (here just the first weight matrix); biases stay inline. Re-save with threshold 0
        # so every initializer lives in model.onnx.data, as with a large real export.
        proto = onnx.load(str(exported), load_external_data=True)
    # Node metadata is kept (real exports carry it), except stack traces: they hold this
    # machine's paths and line numbers, which would make the file change on every edit.
    for node in proto.graph.node:
        kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save_model(
        proto,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=0,
        convert_attribute=False,
    )
    saved = check_ops(path, DYNAMO_OPS)
    inline = [t.name for t in saved.graph.initializer if t.data_location != TensorProto.EXTERNAL]
    if inline or not saved.graph.initializer:
        fail(f"dynamo_mlp: initializers not in external data: {inline}")
    x = np.random.default_rng(3).standard_normal((5, 6)).astype(np.float32)
    (got,) = check_runs(path, {"x": x})
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    if not np.allclose(got, want, rtol=1e-5, atol=1e-6):
        fail("dynamo_mlp: onnxruntime output differs from torch")


def save_helper_model(name: str, graph: onnx.GraphProto) -> Path:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", HELPER_OPSET)],
        producer_name="swerve-make_test_models",
    )
    model.ir_version = HELPER_IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    path = version_dir(name, 1) / "model.onnx"
    onnx.save_model(model, str(path))
    return path


def make_int_ops() -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"], name="add"),
            helper.make_node("Mul", ["c", "c"], ["c2"], name="square"),
            helper.make_node("Relu", ["x"], ["y"], name="relu"),
        ],
        "int_ops",
        inputs=[
            helper.make_tensor_value_info("a", TensorProto.INT64, ["n", 3]),
            helper.make_tensor_value_info("b", TensorProto.INT64, [3]),
            helper.make_tensor_value_info("c", TensorProto.INT32, ["m"]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["k", 4]),
        ],
        outputs=[
            helper.make_tensor_value_info("sum", TensorProto.INT64, ["n", 3]),
            helper.make_tensor_value_info("c2", TensorProto.INT32, ["m"]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["k", 4]),
        ],
    )
    path = save_helper_model("int_ops", graph)
    a = np.array([[1, -2, 3], [2**40, 0, -7]], dtype=np.int64)
    b = np.array([10, 20, -30], dtype=np.int64)
    c = np.array([3, -4, 46340], dtype=np.int32)
    x = np.array([[-1.5, 0.0, 2.5, -0.25]], dtype=np.float32)
    total, squares, relu = check_runs(path, {"a": a, "b": b, "c": c, "x": x})
    if not (np.array_equal(total, a + b) and np.array_equal(squares, c * c)
            and np.array_equal(relu, np.maximum(x, 0))):
        fail("int_ops: onnxruntime results differ from numpy")


def make_multi_rows() -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "a"], ["twice"], name="double"),
            helper.make_node("Mul", ["c", "c"], ["c2"], name="square"),
            helper.make_node("Relu", ["x"], ["y"], name="relu"),
        ],
        "multi_rows",
        inputs=[
            helper.make_tensor_value_info("a", TensorProto.INT64, ["n", 3]),
            helper.make_tensor_value_info("c", TensorProto.INT32, ["n"]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4]),
        ],
        outputs=[
            helper.make_tensor_value_info("twice", TensorProto.INT64, ["n", 3]),
            helper.make_tensor_value_info("c2", TensorProto.INT32, ["n"]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4]),
        ],
    )
    path = save_helper_model("multi_rows", graph)
    a = np.array([[1, -2, 3], [4, 5, -6]], dtype=np.int64)
    c = np.array([7, -8], dtype=np.int32)
    x = np.array([[-1.0, 2.0, -3.0, 4.0], [0.5, -0.5, 0.0, 1.0]], dtype=np.float32)
    twice, squares, relu = check_runs(path, {"a": a, "c": c, "x": x})
    if not (np.array_equal(twice, a + a) and np.array_equal(squares, c * c)
            and np.array_equal(relu, np.maximum(x, 0))):
        fail("multi_rows: onnxruntime results differ from numpy")


def make_bool_model() -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["flags"], ["same"], name="identity")],
        "bool_model",
        inputs=[helper.make_tensor_value_info("flags", TensorProto.BOOL, ["n", 2])],
        outputs=[helper.make_tensor_value_info("same", TensorProto.BOOL, ["n", 2])],
    )
    path = save_helper_model("bool_model", graph)
    flags = np.array([[True, False], [False, True]])
    (same,) = check_runs(path, {"flags": flags})
    if same.dtype != np.bool_ or not np.array_equal(same, flags):
        fail("bool_model: onnxruntime result is not the input")


def make_broken() -> None:
    path = version_dir("broken", 1) / "model.onnx"
    noise = np.random.default_rng(4).integers(0, 256, size=512, dtype=np.uint8).tobytes()
    path.write_bytes(b"this is not an ONNX model\n" + noise)
    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - any load failure is what we want
        return
    fail("broken: onnxruntime loaded the garbage file; change the bytes")


def main() -> None:
    torch.set_num_threads(1)
    if STORE.exists():
        shutil.rmtree(STORE)
    STORE.mkdir(parents=True)
    v1 = make_mlp(1, seed=1)
    v2 = make_mlp(2, seed=2)
    if np.allclose(v1, v2, atol=1e-3):
        fail("mlp versions 1 and 2 give the same outputs; use different seeds")
    (STORE / "mlp" / "config.json").write_text(json.dumps({"version_policy": {"all": {}}}) + "\n")
    for version in (1, 2):
        shutil.copyfile(STORE / "mlp" / str(version) / "model.onnx",
                        version_dir("mlp_latest", version) / "model.onnx")
    make_dynamo_mlp()
    make_int_ops()
    make_multi_rows()
    make_bool_model()
    make_broken()

    total = 0
    for root, _, files in sorted(os.walk(STORE)):
        for name in sorted(files):
            path = Path(root) / name
            size = path.stat().st_size
            total += size
            print(f"{size:8d}  {path.relative_to(REPO)}")
    print(f"{total:8d}  total")
    if total >= MAX_STORE_BYTES:
        fail(f"test model store is {total} bytes, over the {MAX_STORE_BYTES}-byte budget")


if __name__ == "__main__":
    main()
