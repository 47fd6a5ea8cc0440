#!/usr/bin/env python3
"""Train the bundled example model `models/digits/1/model.onnx`.

Trains a small MLP (64 -> 64 -> ReLU -> 10) on scikit-learn's bundled 8x8 digits
data set (no download), exports it with torch's TorchScript ONNX exporter and checks
the export with onnx (operator allow-list) and onnxruntime (same held-out accuracy as
torch). Also writes `docs/examples/digit.json`, a KServe V2 request for one real
held-out digit, prints ready-to-paste V2 and V1 request bodies, and writes
`Tests/e2e/data/digits_heldout.json` (real held-out digits with true labels).

Run from anywhere with the export environment:

    /work/main/.venv-export/bin/python tools/train_digits.py

Outputs are deterministic for a given torch version (fixed seeds, single thread).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits

REPO = Path(__file__).resolve().parent.parent
MODEL_PATH = REPO / "models" / "digits" / "1" / "model.onnx"
EXAMPLE_PATH = REPO / "docs" / "examples" / "digit.json"
E2E_SAMPLE_PATH = REPO / "Tests" / "e2e" / "data" / "digits_heldout.json"
E2E_SAMPLES = 24

ALLOWED_OPS = {
    "Gemm", "MatMul", "Add", "Relu", "Softmax", "ArgMax",
    "Flatten", "Reshape", "Identity", "Constant",
}
MAX_MODEL_BYTES = 50 * 1024
SEED = 0
STEPS = 400


class DigitsMLP(torch.nn.Module):
    """64 -> 64 -> ReLU -> 10, returning (softmax probabilities, argmax label)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(64, 64)
        self.out = torch.nn.Linear(64, 10)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))

    def forward(self, x: torch.Tensor):
        logits = self.logits(x)
        return torch.softmax(logits, dim=1), torch.argmax(logits, dim=1)


def fail(message: str) -> None:
    print(f"train_digits: error: {message}", file=sys.stderr)
    sys.exit(1)


def split_data():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def train(x_train: np.ndarray, y_train: np.ndarray) -> DigitsMLP:
    torch.manual_seed(SEED)
    model = DigitsMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    xs, ys = torch.from_numpy(x_train), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(SEED)
    for step in range(STEPS):
        batch = torch.randint(0, len(xs), (128,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model.logits(xs[batch]), ys[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == STEPS - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    model.eval()
    return model


def export(model: DigitsMLP) -> None:
    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, 64, dtype=torch.float32)
    torch.onnx.export(
        model,
        (example,),
        str(MODEL_PATH),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["probabilities", "label"],
        dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}, "label": {0: "batch"}},
    )


def check_onnx() -> None:
    proto = onnx.load(str(MODEL_PATH))
    onnx.checker.check_model(proto, full_check=True)
    ops = {node.op_type for node in proto.graph.node}
    extra = ops - ALLOWED_OPS
    if extra:
        fail(f"exported model uses operators outside the allowed set: {sorted(extra)}; "
             f"change the model or exporter settings so only {sorted(ALLOWED_OPS)} appear")
    size = MODEL_PATH.stat().st_size
    if size >= MAX_MODEL_BYTES:
        fail(f"model is {size} bytes, over the {MAX_MODEL_BYTES}-byte budget; shrink the hidden layer")
    elem = onnx.TensorProto
    want = {
        "input": (elem.FLOAT, ["batch", 64]),
        "probabilities": (elem.FLOAT, ["batch", 10]),
        "label": (elem.INT64, ["batch"]),
    }
    for info in list(proto.graph.input) + list(proto.graph.output):
        t = info.type.tensor_type
        dims = [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]
        if info.name not in want or want[info.name] != (t.elem_type, dims):
            fail(f"unexpected graph signature for '{info.name}': type {t.elem_type}, dims {dims}; "
                 f"expected {want.get(info.name)}")
    print(f"onnx: ops {sorted(ops)}, {size} bytes, opset "
          f"{[(o.domain or 'ai.onnx', o.version) for o in proto.opset_import]}")


def main() -> None:
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = split_data()
    model = train(x_train, y_train)
    with torch.no_grad():
        t_probs, t_labels = model(torch.from_numpy(x_test))
    torch_acc = float((t_labels.numpy() == y_test).mean())
    print(f"torch held-out accuracy: {torch_acc:.4f} on {len(y_test)} digits")
    if torch_acc <= 0.95:
        fail(f"held-out accuracy {torch_acc:.4f} is not above 0.95; check the training settings")

    export(model)
    check_onnx()

    session = ort.InferenceSession(str(MODEL_PATH), providers=["CPUExecutionProvider"])
    o_probs, o_labels = session.run(["probabilities", "label"], {"input": x_test})
    ort_acc = float((o_labels == y_test).mean())
    print(f"onnxruntime held-out accuracy: {ort_acc:.4f}")
    if ort_acc != torch_acc or not np.array_equal(o_labels, t_labels.numpy()):
        fail("onnxruntime labels differ from torch labels; the export is not faithful")
    if not np.allclose(o_probs, t_probs.numpy(), rtol=1e-4, atol=1e-6):
        fail("onnxruntime probabilities differ from torch probabilities")
    if o_labels.dtype != np.int64 or o_probs.dtype != np.float32:
        fail(f"unexpected output types {o_probs.dtype}, {o_labels.dtype}")

    # One real held-out digit, correctly classified, for the README and docs/examples.
    index = next(i for i in range(len(y_test)) if o_labels[i] == y_test[i])
    pixels = [round(float(v), 4) for v in x_test[index]]
    true_label = int(y_test[index])
    check_probs, check_label = session.run(None, {"input": np.array([pixels], dtype=np.float32)})
    if int(check_label[0]) != true_label:
        fail("the rounded example digit is no longer classified correctly")

    # Held-out digits the model gets right, with true labels, for the end-to-end tests
    # (which run without scikit-learn).
    correct = [i for i in range(len(y_test)) if o_labels[i] == y_test[i]][:E2E_SAMPLES]
    sample = {
        "comment": "generated by tools/train_digits.py: held-out sklearn digits (pixels/16) "
                   "that models/digits/1 classifies correctly, with their true labels",
        "pixels": [[round(float(v), 4) for v in x_test[i]] for i in correct],
        "labels": [int(y_test[i]) for i in correct],
    }
    E2E_SAMPLE_PATH.parent.mkdir(parents=True, exist_ok=True)
    E2E_SAMPLE_PATH.write_text(json.dumps(sample, separators=(",", ":")) + "\n")

    v2 = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": pixels}]}
    v1 = {"instances": [pixels]}
    EXAMPLE_PATH.parent.mkdir(parents=True, exist_ok=True)
    EXAMPLE_PATH.write_text(json.dumps(v2, separators=(",", ":")) + "\n")
    for path in (MODEL_PATH, EXAMPLE_PATH, E2E_SAMPLE_PATH):
        print(f"wrote {os.path.relpath(path, REPO)}")
    print(f"example digit: held-out index {index}, true label {true_label}, "
          f"onnxruntime label {int(check_label[0])}, p={float(check_probs[0][true_label]):.4f}")
    print("\ncurl -s localhost:8000/v2/models/digits/infer -H 'Content-Type: application/json' "
          f"-d @{os.path.relpath(EXAMPLE_PATH, REPO)}")
    print("\nV2 body (POST /v2/models/digits/infer):")
    print(json.dumps(v2, separators=(",", ":")))
    print("\nV1 body (POST /v1/models/digits:predict):")
    print(json.dumps(v1, separators=(",", ":")))


if __name__ == "__main__":
    main()
