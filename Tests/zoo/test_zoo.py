"""The zoo (tools/export_zoo.py) served by swerve and compared with onnxruntime.

For every export in the manifest and both of its test shapes, the same random inputs go to swerve
over HTTP (KServe V2 with binary tensors, the way a client sends images) and to onnxruntime on the
same file. Dense outputs must match within rtol 1e-3 and an atol of 1e-4 of the output's scale;
integer outputs exactly. Detection outputs (boxes, scores, labels, masks, keypoints) are compared as
sets, in a way that is stable under tied scores: see `compare_detections`.

A model swerve cannot load fails with the reason the server gives, unless `EXPECTED_FAILURES` names
it with its reason (strict: when it starts to pass, the entry must go).
"""

from __future__ import annotations

import json
import re

import numpy as np
import onnxruntime as ort
import pytest
import requests

from swerve_e2e import V2_DTYPES
from zoostore import feeds_for, zoo_manifest

RTOL = 1e-3
ATOL_SCALE = 1e-4  # atol = this * max(1, max |expected|)

# Exports swerve does not serve yet, with the reason; each runs as a strict xfail.
EXPECTED_FAILURES: dict[str, str] = {}

MANIFEST = zoo_manifest()
CASES = [pytest.param(name, i, id=f"{name}-{'-'.join(f'{k}{v}' for k, v in dims.items())}",
                      marks=[pytest.mark.xfail(reason=EXPECTED_FAILURES[entry["model"]], strict=True)]
                      if entry["model"] in EXPECTED_FAILURES else [])
         for name, entry in sorted(MANIFEST.items()) for i, dims in enumerate(entry["shapes"])]

NUMPY_OF_V2 = {v: k for k, v in V2_DTYPES.items()}


def infer_binary(server, model: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """POST /v2/models/{model}/infer with binary inputs and outputs (Triton's binary extension)."""
    header = {"inputs": [], "parameters": {"binary_data_output": True}}
    blobs = []
    for name, array in feeds.items():
        data = np.ascontiguousarray(array).tobytes()
        header["inputs"].append({"name": name, "datatype": V2_DTYPES[array.dtype], "shape": list(array.shape),
                                 "parameters": {"binary_data_size": len(data)}})
        blobs.append(data)
    head = json.dumps(header).encode()
    resp = server.post(f"/v2/models/{model}/infer", data=head + b"".join(blobs),
                       headers={"Inference-Header-Content-Length": str(len(head)),
                                "Content-Type": "application/octet-stream"})
    assert resp.status_code == 200, f"{model}: HTTP {resp.status_code}: {resp.text[:2000]}"
    length = int(resp.headers.get("Inference-Header-Content-Length", len(resp.content)))
    answer = json.loads(resp.content[:length])
    body = resp.content[length:]
    out, offset = {}, 0
    for o in answer["outputs"]:
        dtype = np.dtype(NUMPY_OF_V2[o["datatype"]])
        if "data" in o:
            out[o["name"]] = np.asarray(o["data"], dtype=dtype).reshape(o["shape"])
            continue
        size = o["parameters"]["binary_data_size"]
        out[o["name"]] = np.frombuffer(body[offset:offset + size], dtype=dtype).reshape(o["shape"])
        offset += size
    return out


def management_index(server) -> list[dict]:
    port = re.search(r"management_port=(\d+)", server.process.output)
    assert port, f"no management_port=N in the server's output:\n{server.process.output}"
    resp = requests.post(f"http://127.0.0.1:{port.group(1)}/v2/repository/index", timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def require_ready(server, name: str) -> None:
    if server.get(f"/v2/models/{name}/ready").status_code == 200:
        return
    entries = [e for e in management_index(server) if e.get("name") == name]
    pytest.fail(f"swerve did not load {name}: {entries or 'not in the repository index'}", pytrace=False)


def assert_dense(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.dtype == want.dtype, f"{what}: {got.dtype}, onnxruntime {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, onnxruntime {want.shape}"
    if want.dtype.kind in "iub":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL_SCALE * scale, err_msg=what)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box `a` [4] with boxes `b` [N, 4] (x1, y1, x2, y2)."""
    w = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return inter / np.maximum(union, 1e-12)


def compare_detections(got: dict, want: dict, keys: list[str], what: str) -> None:
    """Detections as sets, stable under ties. Every detection of one side must have a partner on
    the other: same label, score within 1e-3 (+1e-3 relative), box within 0.05 px (+1e-3 relative),
    and its masks/keypoints close. Exempt are detections whose score is within that tolerance of the
    lowest score kept (which of several near-equal scores makes the cut is arbitrary), and those
    beside a detection of the other side with the same label, an overlapping box and a near-equal
    score (NMS broke a near-tie the other way)."""
    boxes_key, scores_key, labels_key = keys[:3]
    extras = keys[3:]
    for k in keys:
        assert got[k].dtype == want[k].dtype, f"{what}.{k}: {got[k].dtype}, onnxruntime {want[k].dtype}"
        assert got[k].shape[1:] == want[k].shape[1:], f"{what}.{k}: shape {got[k].shape}, onnxruntime {want[k].shape}"

    def tol(score):
        return 1e-3 + 1e-3 * abs(score)

    lowest = min([float(np.min(s[scores_key])) for s in (got, want) if s[scores_key].size] or [0.0])
    matched = 0
    for a, b, side in ((want, got, "onnxruntime's"), (got, want, "swerve's")):
        for i in range(a[scores_key].shape[0]):
            score, label, box = float(a[scores_key][i]), a[labels_key][i], a[boxes_key][i]
            if score <= lowest + tol(lowest):
                continue
            same = np.nonzero(b[labels_key] == label)[0]
            candidates = [j for j in same if abs(float(b[scores_key][j]) - score) <= tol(score)
                          and np.all(np.abs(b[boxes_key][j] - box) <= 0.05 + 1e-3 * np.abs(box))]
            if candidates:
                j = candidates[0]
                for k in extras:
                    x, y = a[k][i].astype(np.float64), b[k][j].astype(np.float64)
                    scale = max(1.0, float(np.max(np.abs(y))))
                    assert float(np.mean(np.abs(x - y))) <= 1e-3 * scale, \
                        f"{what}: {k} of the detection with score {score:.5f} differ by {np.mean(np.abs(x - y)):.3g} on average"
                matched += 1
                continue
            overlapping = same[iou(box, b[boxes_key][same]) > 0.3] if same.size else same
            near_tie = [j for j in overlapping if abs(float(b[scores_key][j]) - score) <= 10 * tol(score)]
            assert near_tie, (f"{what}: {side} detection {i} (label {label}, score {score:.5f}, box {box.tolist()}) "
                              f"has no partner on the other side")
    if matched == 0 and want[scores_key].size:
        # Every score is within the tolerance of the cutoff (an untrained head at this input):
        # then at least the sorted scores must agree.
        a, b = np.sort(want[scores_key])[::-1], np.sort(got[scores_key])[::-1]
        assert a.shape == b.shape and np.all(np.abs(a - b) <= 1e-3 + 1e-3 * np.abs(a)), \
            f"{what}: no detection matched and the sorted scores differ"



@pytest.mark.parametrize("name,shape_index", CASES)
def test_zoo_export_matches_onnxruntime(zoo_server, zoo_store, name, shape_index):
    entry = MANIFEST[name]
    require_ready(zoo_server, name)
    dims = entry["shapes"][shape_index]
    feeds = feeds_for(entry["inputs"], dims, seed=100 + shape_index)
    reference = ort.InferenceSession(str(zoo_store / entry["path"]), providers=["CPUExecutionProvider"])
    names = [o.name for o in reference.get_outputs()]
    expected = dict(zip(names, reference.run(names, feeds)))
    what = f"{name} at {dims}"
    # The first request of a shape builds the engine's plan for it; the second runs through it.
    for run in ("first run", "shape plan"):
        got = infer_binary(zoo_server, name, feeds)
        assert set(got) == set(names), f"{what}: outputs {sorted(got)}, onnxruntime has {sorted(names)}"
        if entry["compare"] == "detection":
            compare_detections(got, expected, entry["outputs"], f"{what} ({run})")
        else:
            for out_name, want in expected.items():
                assert_dense(got[out_name], want, f"{what}: output {out_name} ({run})")


def test_zoo_covers_the_families():
    """The store holds what `make zoo`/`make test-zoo` promise (a partial store is a setup error)."""
    families = {e["family"] for e in MANIFEST.values()}
    tier = {e["tier"] for e in MANIFEST.values()}
    wanted = {"classification", "detection", "segmentation", "transformers", "pytorch ops", "recurrent"}
    if "full" in tier:
        wanted |= {"video", "optical flow"}
    assert wanted <= families, f"the zoo lacks {sorted(wanted - families)}: re-run tools/export_zoo.py"
    assert {e["exporter"] for e in MANIFEST.values()} == {"torchscript", "dynamo"}
