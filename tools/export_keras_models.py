#!/usr/bin/env python3
"""Export Keras models to ONNX through tf2onnx, with random weights and no downloads.

Writes a model store (default `.realmodels-tf/`, git-ignored) in the layout and manifest format of
`tools/export_real_models.py`, so that `Tests/realmodels` checks it the same way:

- `keras_mlp_tf2onnx`           Dense 784-256-128-10 with softmax, input `input` FP32 [batch, 784]
- `keras_cnn_tf2onnx`           Conv2D/BatchNormalization/MaxPool2D/Dropout/Dense digit-style CNN,
                                input `input` FP32 [batch, 28, 28, 1] (NHWC: tf2onnx adds Transposes)
- `keras_mobilenet_v2_tf2onnx`  `keras.applications.MobileNetV2(weights=None, alpha=0.35)` at 96x96
- `keras_lstm_tf2onnx`, `keras_gru_tf2onnx`, `keras_simple_rnn_tf2onnx`, `keras_bidirectional_tf2onnx`
                                recurrent layers over [batch, 20, 16] (tf2onnx rewrites them to ONNX
                                LSTM/GRU/RNN nodes)

Batch normalization gets random statistics and affine parameters and biases random values (as after
training), so the outputs are not trivially small and no bias is optimised away. Every export is checked against Keras with onnxruntime.

    .venv-tf/bin/python tools/export_keras_models.py [--out DIR]     (`make test-tf`, part of `make test`, runs it)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SEED = 20240601
OPSET = 17


def mlp() -> tf.keras.Model:
    return tf.keras.Sequential([
        tf.keras.Input((784,)),
        tf.keras.layers.Dense(256, activation="relu"),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10, activation="softmax"),
    ])


def cnn() -> tf.keras.Model:
    layers = tf.keras.layers
    return tf.keras.Sequential([
        tf.keras.Input((28, 28, 1)),
        layers.Conv2D(16, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.MaxPool2D(2),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPool2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def mobilenet() -> tf.keras.Model:
    return tf.keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)


def recurrent(kind: str) -> tf.keras.Model:
    """A sequence model over [batch, 20, 16] as Keras users write them: LSTM, GRU (reset_after, the
    Keras default, which is ONNX's linear_before_reset), SimpleRNN, and a bidirectional LSTM that
    returns sequences under a GRU."""
    layers = tf.keras.layers
    body = {
        "lstm": [layers.LSTM(32)],
        "gru": [layers.GRU(32)],
        "simple_rnn": [layers.SimpleRNN(32, return_sequences=True), layers.SimpleRNN(24)],
        "bidirectional": [layers.Bidirectional(layers.LSTM(24, return_sequences=True)), layers.GRU(16)],
    }[kind]
    return tf.keras.Sequential([tf.keras.Input((20, 16)), *body, layers.Dense(5)])


MODELS = {"keras_mlp": (mlp, [784]), "keras_cnn": (cnn, [28, 28, 1]), "keras_mobilenet_v2": (mobilenet, [96, 96, 3]),
          "keras_lstm": (lambda: recurrent("lstm"), [20, 16]), "keras_gru": (lambda: recurrent("gru"), [20, 16]),
          "keras_simple_rnn": (lambda: recurrent("simple_rnn"), [20, 16]),
          "keras_bidirectional": (lambda: recurrent("bidirectional"), [20, 16])}


def randomize_batch_norm(model: tf.keras.Model, rng: np.random.Generator) -> None:
    """Random BatchNormalization statistics and parameters, and non-zero biases (Keras starts them at
    zero, and tf2onnx then drops the bias Adds: the export would not be the one of a trained model)."""
    for layer in model.layers:
        bias = getattr(layer, "bias", None)
        if bias is not None and not isinstance(layer, tf.keras.layers.BatchNormalization):
            bias.assign(rng.normal(0, 0.1, bias.shape).astype(np.float32))
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                               rng.normal(0, 0.1, beta.shape).astype(np.float32),
                               rng.normal(0, 0.1, mean.shape).astype(np.float32),
                               rng.uniform(0.5, 1.5, var.shape).astype(np.float32)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / ".realmodels-tf")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for base, (build, dims) in MODELS.items():
        tf.keras.utils.set_random_seed(SEED)
        model = build()
        randomize_batch_norm(model, np.random.default_rng(SEED))
        name = f"{base}_tf2onnx"
        path = out / name / "1" / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        spec = (tf.TensorSpec([None, *dims], tf.float32, name="input"),)
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, output_path=str(path))
        seconds = time.monotonic() - start

        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(1).standard_normal((3, *dims)).astype(np.float32)
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        want = model(x, training=False).numpy()
        diff = float(np.max(np.abs(got - want)))
        if diff > 1e-4:
            raise SystemExit(f"export_keras_models: {path}: onnxruntime and Keras differ by {diff}")
        ops = collections.Counter(n.op_type for n in proto.graph.node)
        manifest[name] = {
            "model": base, "exporter": "tf2onnx", "path": f"{name}/1/model.onnx",
            "inputs": [{"name": session.get_inputs()[0].name, "dtype": "float32", "shape": ["batch", *dims]}],
            "outputs": [o.name for o in session.get_outputs()], "ir_version": proto.ir_version,
            "opsets": {(o.domain or "ai.onnx"): o.version for o in proto.opset_import},
            "ops": dict(sorted(ops.items())), "nodes": len(proto.graph.node), "file_bytes": path.stat().st_size,
        }
        print(f"{name}: {seconds:.1f} s, {len(proto.graph.node)} nodes, output max |y| {np.max(np.abs(got)):.3g}, "
              f"ort-vs-keras max diff {diff:.2g}\n    " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())),
              flush=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"export_keras_models: wrote {len(manifest)} models to {out}")


if __name__ == "__main__":
    main()
