#!/usr/bin/env python3
"""Writes the generated part of the fuzzers' seed corpus (Tests/Fuzz/Corpus/<target>/seed-*).

Real requests, the repository's small ONNX fixtures and config.json examples, framed the way each
target reads its input (see Tests/Fuzz/Targets/*). Files named regress-* are inputs that once
crashed a target; they are added by hand and kept. Run from the repository root:
    python3 Tests/Fuzz/make_seeds.py
"""
import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "Tests/Fuzz/Corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


def clear(target):
    for f in (CORPUS / target).glob("seed-*"):
        f.unlink()


V2 = {
    "relu": {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, -2.5, 3e-3, 4, 5, 6]}]},
    "relu_nested": {"id": "r1", "parameters": {"timeout": 100000, "binary_data_output": False},
                    "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [[0.1, 0.2, 0.3]]}],
                    "outputs": [{"name": "y"}, {"name": "z", "parameters": {"binary_data": True}}]},
    "ints": {"inputs": [{"name": "a", "shape": [1, 2], "datatype": "INT64", "data": [1, 9007199254740993]},
                        {"name": "b", "shape": [2], "datatype": "INT64", "data": [-1, 2]},
                        {"name": "flags", "shape": [1], "datatype": "BOOL", "data": [True]}]},
    "wrong": {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "INT32", "data": [1, 2, 3]}]},
}

V1 = {
    "relu_rows": {"instances": [[1.0, 2.0, 3.0], [-1, -2, -3]]},
    "relu_columns": {"inputs": [[1.0, 2.0, 3.0]]},
    "ints_rows": {"instances": [{"a": [1, 2], "b": [3, 4], "flags": True}]},
    "ints_columns": {"inputs": {"a": [[1, 2]], "b": [3, 4], "flags": [False]}},
    "signature": {"signature_name": "serving_default", "instances": [[0, 0, 0]]},
}


def main():
    for t in ["FuzzJSON", "FuzzV2Infer", "FuzzV2Binary", "FuzzV1Predict", "FuzzONNX", "FuzzConfig"]:
        clear(t)

    # JSON parser: requests, plus numbers on both sides of the fast path's limits.
    for name, body in {**V2, **V1}.items():
        write("FuzzJSON", name, json.dumps(body))
    write("FuzzJSON", "digit", (ROOT / "docs/examples/digit.json").read_bytes())
    write("FuzzJSON", "numbers", "[0, -0, 1e22, 1e23, 123456789012345, 1234567890123456789, 9223372036854775807, "
          "9223372036854775808, -9223372036854775808, 2.2250738585072014e-308, 4.9e-324, 1.7976931348623157e308, 0.1e-400]")
    write("FuzzJSON", "strings", '{"a": "\\u00e9\\ud83d\\ude00\\n\\"", "b": "\xc3\xa9", "c": [true, false, null, {}]}')

    # V2 JSON: byte 0 picks the route (0: relu, 1: ints; see FuzzV2Infer.swift).
    for name, body in V2.items():
        write("FuzzV2Infer", name, bytes([1 if name == "ints" else 0]) + json.dumps(body).encode())

    # V2 binary: byte 0 picks the model, bytes 1-2 the header length, then JSON header + tensors.
    def binary(name, model, header, tail, length=None):
        h = json.dumps(header).encode()
        n = len(h) if length is None else length
        write("FuzzV2Binary", name, bytes([model]) + struct.pack("<H", n) + h + tail)

    binary("relu", 0, {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}],
                       "outputs": [{"name": "y", "parameters": {"binary_data": True}}]},
           struct.pack("<6f", 1, -2, 3, -4, 5, -6))
    binary("ints", 1, {"inputs": [{"name": "a", "shape": [1, 2], "datatype": "INT64", "parameters": {"binary_data_size": 16}},
                                  {"name": "b", "shape": [2], "datatype": "INT64", "data": [1, 2]},
                                  {"name": "flags", "shape": [1], "datatype": "BOOL", "parameters": {"binary_data_size": 1}}]},
           struct.pack("<2q", 7, -7) + b"\x01")
    write("FuzzV2Binary", "raw", bytes([0, 0, 0]) + struct.pack("<3f", 1, 2, 3))
    write("FuzzV2Binary", "no_header", bytes([0, 0xFF, 0xFF]) + json.dumps(V2["relu"]).encode())

    # V1: byte 0 picks the route (0: relu, 1: ints).
    for name, body in V1.items():
        write("FuzzV1Predict", name, bytes([1 if name.startswith("ints") else 0]) + json.dumps(body).encode())

    # ONNX: the repository's small models (a few KB each).
    for path in ["Tests/ONNXTests/Fixtures/ir3.onnx", "Tests/ONNXTests/Fixtures/attributes.onnx",
                 "Tests/ONNXTests/Fixtures/typed.onnx", "Tests/e2e/models/bool_model/1/model.onnx",
                 "Tests/e2e/models/int_ops/1/model.onnx", "Tests/e2e/models/multi_rows/1/model.onnx",
                 "Tests/e2e/models/mlp/1/model.onnx", "Tests/e2e/models/dynamo_mlp/1/model.onnx",
                 "Tests/ONNXTests/Fixtures/torch_mlp/model.onnx"]:
        write("FuzzONNX", path.replace("/", "_").removeprefix("Tests_"), (ROOT / path).read_bytes())

    # config.json: the repository's examples and every field.
    write("FuzzConfig", "e2e_mlp", (ROOT / "Tests/e2e/models/mlp/config.json").read_bytes())
    configs = {
        "docs": {"version_policy": {"latest": 2}, "version_labels": {"stable": 3, "canary": 4},
                 "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 8]}],
                 "output": [{"name": "output", "dims": [-1, 4]}], "max_batch_size": 8,
                 "dynamic_batching": {}, "instance_group": [{"kind": "KIND_CPU", "count": 1}]},
        "specific": {"version_policy": {"specific": {"versions": [1, 3]}}},
        "batching": {"max_batch_size": 16, "dynamic_batching": {"preferred_batch_size": [4, 8],
                     "max_queue_delay_microseconds": 500, "default_queue_policy": {"max_queue_size": 64}},
                     "instance_group": [{"kind": "KIND_AUTO", "count": 2}]},
        "empty": {},
    }
    for name, body in configs.items():
        write("FuzzConfig", name, json.dumps(body))


if __name__ == "__main__":
    main()
