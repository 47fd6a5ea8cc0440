"""The com.microsoft quantized operators (the ones onnxruntime's quantizer emits, and MatMulNBits) as
one-node models served by swerve over HTTP, against onnxruntime running the same file.

ONNX has no conformance data for these operators, so onnxruntime is the reference. Quantized
outputs may differ by one step (onnxruntime's sigmoid is MLAS's approximation, and it rounds some
requantizations in a different order); float outputs within rtol 1e-5 / atol 1e-5 (the int32 sums are
exact, only the float scaling's order differs). Each case also checks that swerve really ran the
operator (the model loads and the output shape and type agree).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from swerve_e2e import assert_ok, finish_server, start_server

V2_TYPES = {np.dtype(np.float32): "FP32", np.dtype(np.uint8): "UINT8", np.dtype(np.int8): "INT8"}


def v2_input(name, array):
    return {"name": name, "shape": list(array.shape), "datatype": V2_TYPES[array.dtype], "data": array.reshape(-1).tolist()}

MS = "com.microsoft"
RNG = np.random.default_rng(2026)


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def qbytes(dtype, shape):
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max + 1, size=shape).astype(dtype)


def model(node, inputs, outputs, initializers):
    graph = helper.make_graph([node], "g", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)], ir_version=8)


def tensor_info(name, array):
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), list(array.shape))


def out_info(name, dtype=np.float32):
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), None)


def unary(op, dtype, **attrs):
    x = qbytes(dtype, (2, 3, 5))
    zp = np.array(3 if dtype == np.uint8 else -2, dtype=dtype)
    inits = [const("xs", np.float32(0.07)), const("xz", zp), const("ys", np.float32(0.004 if op == "QLinearSigmoid" else 0.05)),
             const("yz", np.array(0 if dtype == np.uint8 else -128, dtype=dtype))]
    node = helper.make_node(op, ["x", "xs", "xz", "ys", "yz"], ["y"], domain=MS, **attrs)
    return model(node, [tensor_info("x", x)], [out_info("y", dtype)], inits), {"x": x}


def binary(op, dtype):
    a, b = qbytes(dtype, (2, 3, 4)), qbytes(dtype, (4,))
    z = lambda v: np.array(v, dtype=dtype)  # noqa: E731
    inits = [const("as", np.float32(0.03)), const("az", z(5)), const("bs", np.float32(0.02)), const("bz", z(-3 if dtype == np.int8 else 7)),
             const("cs", np.float32(0.05 if op == "QLinearAdd" else 0.4)), const("cz", z(10))]
    node = helper.make_node(op, ["a", "as", "az", "b", "bs", "bz", "cs", "cz"], ["c"], domain=MS)
    return model(node, [tensor_info("a", a), tensor_info("b", b)], [out_info("c", dtype)], inits), {"a": a, "b": b}


def global_pool(channels_last):
    x = qbytes(np.uint8, (2, 4, 4, 3) if channels_last else (2, 3, 4, 4))
    inits = [const("xs", np.float32(0.1)), const("xz", np.uint8(20)), const("ys", np.float32(0.05)), const("yz", np.uint8(9))]
    node = helper.make_node("QLinearGlobalAveragePool", ["x", "xs", "xz", "ys", "yz"], ["y"], domain=MS, channels_last=int(channels_last))
    return model(node, [tensor_info("x", x)], [out_info("y", np.uint8)], inits), {"x": x}


def concat():
    a, b = qbytes(np.uint8, (2, 3, 4)), qbytes(np.uint8, (2, 2, 4))
    inits = [const("ys", np.float32(0.05)), const("yz", np.uint8(128)), const("as", np.float32(0.05)), const("az", np.uint8(128)),
             const("bs", np.float32(0.02)), const("bz", np.uint8(100))]
    node = helper.make_node("QLinearConcat", ["ys", "yz", "a", "as", "az", "b", "bs", "bz"], ["y"], domain=MS, axis=1)
    return model(node, [tensor_info("a", a), tensor_info("b", b)], [out_info("y", np.uint8)], inits), {"a": a, "b": b}


def dynamic_quantize_matmul():
    a = RNG.standard_normal((3, 5, 16)).astype(np.float32)
    inits = [const("b", qbytes(np.int8, (16, 8))), const("bs", RNG.uniform(0.01, 0.05, 8).astype(np.float32)),
             const("bz", np.zeros(8, np.int8)), const("bias", RNG.standard_normal(8).astype(np.float32))]
    node = helper.make_node("DynamicQuantizeMatMul", ["a", "b", "bs", "bz", "bias"], ["y"], domain=MS)
    return model(node, [tensor_info("a", a)], [out_info("y")], inits), {"a": a}


def matmul_integer_to_float():
    a = qbytes(np.uint8, (4, 16))
    inits = [const("b", qbytes(np.int8, (16, 6))), const("as", np.float32(0.02)), const("bs", RNG.uniform(0.01, 0.05, 6).astype(np.float32)),
             const("az", np.uint8(128)), const("bz", np.zeros(6, np.int8)), const("bias", RNG.standard_normal(6).astype(np.float32))]
    node = helper.make_node("MatMulIntegerToFloat", ["a", "b", "as", "bs", "az", "bz", "bias"], ["y"], domain=MS)
    return model(node, [tensor_info("a", a)], [out_info("y")], inits), {"a": a}


def qgemm(quantized_output):
    a = qbytes(np.uint8, (5, 12))
    inits = [const("as", np.float32(0.03)), const("az", np.uint8(120)), const("b", qbytes(np.int8, (7, 12))),
             const("bs", np.float32(0.02)), const("bz", np.int8(0)), const("c", RNG.integers(-500, 500, 7).astype(np.int32))]
    names = ["a", "as", "az", "b", "bs", "bz", "c"]
    if quantized_output:
        inits += [const("ys", np.float32(0.2)), const("yz", np.uint8(100))]
        names += ["ys", "yz"]
    node = helper.make_node("QGemm", names, ["y"], domain=MS, transB=1, alpha=1.0)
    return model(node, [tensor_info("a", a)], [out_info("y", np.uint8 if quantized_output else np.float32)], inits), {"a": a}


def matmul_nbits(with_zero_points):
    k, n, block = 40, 6, 16
    blocks = (k + block - 1) // block
    a = RNG.standard_normal((2, 3, k)).astype(np.float32)
    b = RNG.integers(0, 256, size=(n, blocks, block // 2)).astype(np.uint8)
    inits = [const("b", b), const("s", RNG.uniform(0.01, 0.1, n * blocks).astype(np.float32))]
    names = ["a", "b", "s"]
    if with_zero_points:
        inits.append(const("z", RNG.integers(0, 256, size=n * ((blocks * 4 + 7) // 8)).astype(np.uint8)))
        names.append("z")
    node = helper.make_node("MatMulNBits", names, ["y"], domain=MS, K=k, N=n, bits=4, block_size=block)
    return model(node, [tensor_info("a", a)], [out_info("y")], inits), {"a": a}


CASES = {
    "qlinear_sigmoid_u8": unary("QLinearSigmoid", np.uint8),
    "qlinear_sigmoid_s8": unary("QLinearSigmoid", np.int8),
    "qlinear_leaky_relu_u8": unary("QLinearLeakyRelu", np.uint8, alpha=0.1),
    "qlinear_leaky_relu_s8": unary("QLinearLeakyRelu", np.int8, alpha=0.1),
    "qlinear_add_u8": binary("QLinearAdd", np.uint8),
    "qlinear_add_s8": binary("QLinearAdd", np.int8),
    "qlinear_mul_u8": binary("QLinearMul", np.uint8),
    "qlinear_mul_s8": binary("QLinearMul", np.int8),
    "qlinear_global_average_pool": global_pool(False),
    "qlinear_global_average_pool_nhwc": global_pool(True),
    "qlinear_concat": concat(),
    "dynamic_quantize_matmul": dynamic_quantize_matmul(),
    "matmul_integer_to_float": matmul_integer_to_float(),
    "qgemm_quantized": qgemm(True),
    "qgemm_float": qgemm(False),
    "matmul_nbits": matmul_nbits(False),
    "matmul_nbits_zero_points": matmul_nbits(True),
}


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory):
    store = tmp_path_factory.mktemp("quantized-ops")
    for name, (proto, _) in CASES.items():
        (store / name / "1").mkdir(parents=True)
        (store / name / "1" / "model.onnx").write_bytes(proto.SerializeToString())
    srv = start_server(store)
    yield srv
    finish_server(srv)


@pytest.mark.parametrize("name", sorted(CASES))
def test_contrib_operator_matches_onnxruntime(ops_server, name):
    proto, feeds = CASES[name]
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    resp = ops_server.post(f"/v2/models/{name}/infer", json={"inputs": [v2_input(k, v) for k, v in feeds.items()]})
    out = assert_ok(resp)["outputs"][0]
    got = np.asarray(out["data"]).reshape(out["shape"])
    assert list(got.shape) == list(want.shape)
    if want.dtype in (np.uint8, np.int8):
        diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
        assert diff.max() <= 1, f"{name}: {int((diff > 0).sum())} values differ, by up to {diff.max()} steps"
    else:
        np.testing.assert_allclose(got.astype(np.float32), want, rtol=1e-5, atol=1e-5, err_msg=name)
