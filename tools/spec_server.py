#!/usr/bin/env python3
"""A small Python model of swerve's HTTP contract, used to check the end-to-end suite itself.

This is NOT swerve. It answers the inference port's KServe V2 / TF Serving REST routes the way
the contract says (onnxruntime does the math), so that changes to `Tests/e2e` can be checked
without the Swift binary, and so that a mutated copy of it can show that a test is able to fail.

    PATH=$PWD/.venv/bin:$PATH SWERVE_BIN=tools/spec_server.py .venv/bin/python -m pytest -q Tests/e2e

Understands `serve --model-store DIR --host H --port P --max-body-size N --device D` (other
flags are accepted and ignored), `config.json` `version_policy` `{"all": {}}` (otherwise the
latest version only), and prints `http_port=N` on stderr once listening.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import onnxruntime as ort

# onnxruntime type -> (V2 datatype, numpy type, TF dtype)
TYPES = {
    "tensor(float)": ("FP32", np.float32, "DT_FLOAT"),
    "tensor(int64)": ("INT64", np.int64, "DT_INT64"),
    "tensor(int32)": ("INT32", np.int32, "DT_INT32"),
    "tensor(bool)": ("BOOL", np.bool_, "DT_BOOL"),
}
V2_ROUTE = re.compile(r"/v2/models/([^/]+)(?:/versions/(\d+))?(/ready|/config|/infer)?")
V1_ROUTE = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata|:predict)?")


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoadedVersion:
    """One model version: an onnxruntime session, or the error that kept it from loading."""

    def __init__(self, path: Path) -> None:
        self.error = ""
        self.session = None
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            self.inputs = [(i.name, TYPES[i.type], dims(i.shape)) for i in self.session.get_inputs()]
            self.outputs = [(o.name, TYPES[o.type], dims(o.shape)) for o in self.session.get_outputs()]
        except Exception as error:  # noqa: BLE001 - any failure makes the version unavailable
            self.error = str(error) or "the model failed to load"


def dims(shape) -> list[int]:
    return [d if isinstance(d, int) else -1 for d in shape]


def load_store(store: Path) -> dict[str, dict[int, LoadedVersion]]:
    models = {}
    for model in sorted(p for p in store.iterdir() if p.is_dir()):
        config_path = model / "config.json"
        config = json.loads(config_path.read_text()) if config_path.exists() else {}
        numbers = sorted(int(v.name) for v in model.iterdir() if v.name.isdigit() and int(v.name) > 0)
        if "all" not in config.get("version_policy", {}):
            numbers = numbers[-1:]
        models[model.name] = {n: LoadedVersion(model / str(n) / "model.onnx") for n in numbers}
    return models


def to_array(data, dtype, shape=None) -> np.ndarray:
    """JSON values (any nesting) -> numpy array of the declared type, strictly checked."""
    numpy_type = dtype[1]
    try:
        values = np.array(data, dtype=object)
    except ValueError:
        raise HTTPError(400, "ragged nested data") from None
    if any(isinstance(v, (list, dict)) for v in values.reshape(-1)):
        raise HTTPError(400, "ragged nested data")
    for v in values.reshape(-1):
        if numpy_type == np.bool_:
            ok = type(v) is bool
        elif numpy_type == np.float32:
            ok = type(v) in (int, float)
        else:
            info = np.iinfo(numpy_type)
            ok = type(v) is int and info.min <= v <= info.max
        if not ok:
            raise HTTPError(400, f"value {v!r} is not a valid {dtype[0]}")
    array = values.astype(numpy_type)
    if shape is not None:
        if array.size != int(np.prod(shape)):
            raise HTTPError(400, f"{array.size} values do not fill shape {shape}")
        array = array.reshape(shape)
    return array


def check_shape(array: np.ndarray, declared: list[int], name: str) -> None:
    if array.ndim != len(declared) or any(d not in (-1, g) for d, g in zip(declared, array.shape)):
        raise HTTPError(400, f"input {name}: shape {list(array.shape)} does not match {declared}")


def parse_json(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        raise HTTPError(400, "the body is not valid JSON") from None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.handle_method("GET")

    def do_POST(self) -> None:
        self.handle_method("POST")

    def do_PUT(self) -> None:
        self.handle_method("PUT")

    def do_DELETE(self) -> None:
        self.handle_method("DELETE")

    def send_json(self, status: int, value) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_method(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if length > self.server.max_body_size:
                raise HTTPError(413, f"the body is larger than {self.server.max_body_size} bytes")
            self.send_json(200, self.route(method, self.path, body))
        except HTTPError as error:
            self.send_json(error.status, {"error": error.message})

    def version(self, model: str, version: str | None) -> tuple[int, LoadedVersion]:
        versions = self.server.models.get(model)
        if not versions:
            raise HTTPError(404, f"unknown model {model}")
        if version is None:
            loaded = [n for n, v in versions.items() if v.session]
            if not loaded:
                raise HTTPError(503, f"model {model} failed to load: {next(iter(versions.values())).error}")
            return max(loaded), versions[max(loaded)]
        number = int(version)
        if number not in versions:
            raise HTTPError(404, f"unknown version {version} of model {model}")
        if versions[number].session is None:
            raise HTTPError(503, f"model {model} version {version} failed to load")
        return number, versions[number]

    def route(self, method: str, path: str, body: bytes):
        def expect(wanted: str) -> None:
            if method != wanted:
                raise HTTPError(405, f"use {wanted} on {path}")

        if path in ("/v2/health/live", "/v2/health/ready"):
            expect("GET")
            return {}
        if path == "/v2":
            expect("GET")
            return {"name": "swerve", "version": "0.0.0", "extensions": []}
        match = V2_ROUTE.fullmatch(path)
        if match:
            return self.v2(method, expect, *match.groups(), body)
        match = V1_ROUTE.fullmatch(path)
        if match:
            return self.v1(method, expect, *match.groups(), body)
        raise HTTPError(404, f"no route {path}")

    def v2(self, method, expect, model, version, tail, body):
        expect("POST" if tail == "/infer" else "GET")
        number, loaded = self.version(model, version)
        if tail == "/infer":
            return self.v2_infer(model, number, loaded, parse_json(body))
        if tail == "/ready":
            return {}
        if tail == "/config":
            def entries(items):
                return [{"name": n, "data_type": "TYPE_" + t[0], "dims": s} for n, t, s in items]
            return {"name": model, "platform": "onnx_onnxv1", "max_batch_size": 0,
                    "input": entries(loaded.inputs), "output": entries(loaded.outputs)}

        def tensors(items):
            return [{"name": n, "datatype": t[0], "shape": s} for n, t, s in items]
        versions = [str(n) for n in sorted(self.server.models[model])] if version is None else [version]
        return {"name": model, "versions": versions, "platform": "onnx_onnxv1",
                "inputs": tensors(loaded.inputs), "outputs": tensors(loaded.outputs)}

    def v2_infer(self, model, number, loaded, request):
        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
            raise HTTPError(400, "the body needs an 'inputs' list")
        declared = {n: (t, s) for n, t, s in loaded.inputs}
        feeds = {}
        for entry in request["inputs"]:
            if not isinstance(entry, dict) or entry.get("name") not in declared:
                raise HTTPError(400, "unknown input")
            dtype, shape = declared[entry["name"]]
            if entry.get("datatype") != dtype[0]:
                raise HTTPError(400, f"input {entry['name']} must be {dtype[0]}")
            if "shape" not in entry or "data" not in entry:
                raise HTTPError(400, "each input needs 'shape' and 'data'")
            if any(type(d) is not int or d < 0 for d in entry["shape"]):
                raise HTTPError(400, "shape entries must be non-negative integers")
            array = to_array(entry["data"], dtype, entry["shape"])
            check_shape(array, shape, entry["name"])
            feeds[entry["name"]] = array
        missing = sorted(set(declared) - set(feeds))
        if missing:
            raise HTTPError(400, f"missing inputs {missing}")
        names = [n for n, _, _ in loaded.outputs]
        results = dict(zip(names, loaded.session.run(names, feeds)))
        types = {n: t for n, t, _ in loaded.outputs}
        if "outputs" in request:
            names = [o["name"] for o in request["outputs"]]
        answer = {"model_name": model, "model_version": str(number), "outputs": [
            {"name": n, "datatype": types[n][0], "shape": list(results[n].shape),
             "data": results[n].reshape(-1).tolist()} for n in names]}
        if "id" in request:
            answer["id"] = request["id"]
        return answer

    def v1(self, method, expect, model, version, tail, body):
        expect("POST" if tail == ":predict" else "GET")
        if tail == ":predict":
            return self.v1_predict(self.version(model, version)[1], parse_json(body))
        if tail == "/metadata":
            number, loaded = self.version(model, version)

            def signature(items):
                return {n: {"dtype": t[2], "name": n, "tensor_shape": {
                    "dim": [{"size": str(d), "name": ""} for d in s], "unknown_rank": False}}
                    for n, t, s in items}
            return {"model_spec": {"name": model, "signature_name": "", "version": str(number)},
                    "metadata": {"signature_def": {"signature_def": {"serving_default": {
                        "inputs": signature(loaded.inputs), "outputs": signature(loaded.outputs),
                        "method_name": "tensorflow/serving/predict"}}}}}
        versions = self.server.models.get(model)
        if not versions or (version is not None and int(version) not in versions):
            raise HTTPError(404, f"unknown model {model} or version {version}")
        numbers = sorted(versions, reverse=True) if version is None else [int(version)]
        return {"model_version_status": [{
            "version": str(n),
            "state": "AVAILABLE" if versions[n].session else "END",
            "status": {"error_code": "OK" if versions[n].session else "UNKNOWN",
                       "error_message": versions[n].error}} for n in numbers]}

    def v1_predict(self, loaded, request):
        if not isinstance(request, dict):
            raise HTTPError(400, "the body must be a JSON object")
        declared = {n: (t, s) for n, t, s in loaded.inputs}
        names = [n for n, _, _ in loaded.inputs]
        if "instances" in request:
            rows = request["instances"]
            if not isinstance(rows, list) or not rows:
                raise HTTPError(400, "'instances' must be a non-empty list")
            if len(names) == 1:
                columns = {names[0]: rows}
            else:
                if not all(isinstance(r, dict) for r in rows):
                    raise HTTPError(400, "rows of a multi-input model are objects")
                columns = {n: [r[n] for r in rows if n in r] for n in names}
                if any(len(c) != len(rows) for c in columns.values()):
                    raise HTTPError(400, "a row misses an input")
            rows_form = True
        elif "inputs" in request:
            given = request["inputs"]
            if not isinstance(given, dict) and len(names) > 1:
                raise HTTPError(400, "name the inputs of a multi-input model")
            columns = given if isinstance(given, dict) else {names[0]: given}
            rows_form = False
        else:
            raise HTTPError(400, "the body needs 'instances' or 'inputs'")
        if set(columns) != set(names):
            raise HTTPError(400, f"inputs must be exactly {names}")
        feeds = {}
        for name, value in columns.items():
            feeds[name] = to_array(value, declared[name][0])
            check_shape(feeds[name], declared[name][1], name)
        outputs = [n for n, _, _ in loaded.outputs]
        results = loaded.session.run(outputs, feeds)
        if rows_form:
            if len(outputs) == 1:
                return {"predictions": results[0].tolist()}
            return {"predictions": [{n: r[i].tolist() for n, r in zip(outputs, results)}
                                    for i in range(results[0].shape[0])]}
        if len(outputs) == 1:
            return {"outputs": results[0].tolist()}
        return {"outputs": {n: r.tolist() for n, r in zip(outputs, results)}}


def main() -> None:
    if sys.argv[1:2] != ["serve"]:
        sys.exit("usage: spec_server.py serve --model-store DIR [--host H] [--port P] ...")
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-store", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-body-size", type=int, default=64 * 1024 * 1024)
    parser.add_argument("--device", default="auto")
    for ignored in ("--management-host", "--management-port", "--poll-interval"):
        parser.add_argument(ignored)
    options = parser.parse_args(sys.argv[2:])
    if options.device.startswith("cuda"):
        sys.exit("spec_server: CUDA not available (this model of the contract is CPU only)")
    server = ThreadingHTTPServer((options.host, options.port), Handler)
    server.models = load_store(Path(options.model_store))
    server.max_body_size = options.max_body_size
    print(f"spec_server listening http_port={server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
