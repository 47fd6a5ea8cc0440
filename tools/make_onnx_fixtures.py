#!/usr/bin/env python3
"""Writes the ONNX decoder's test fixtures into Tests/ONNXTests/Fixtures/.

Each fixture `NAME.onnx` (or `NAME/model.onnx` when it has external data) comes with `NAME.json`:
the facts about it computed by onnx/numpy (node op types, inputs/outputs with dtype and dims,
opsets, initializer shapes and checksums, attributes), which the Swift tests compare the decoder's
result against. Generated files; rerun this script to regenerate them:

    /work/main/.venv/bin/python tools/make_onnx_fixtures.py            # onnx-only fixtures
    /work/main/.venv-export/bin/python tools/make_onnx_fixtures.py --torch   # + the torch MLP
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ONNXTests", "Fixtures")


# ---------------------------------------------------------------------------------------------
# Facts


def dim_fact(d):
    if d.HasField("dim_value"):
        return int(d.dim_value)
    if d.HasField("dim_param") and d.dim_param:
        return d.dim_param
    return None


def value_info_facts(vi):
    out = {"name": vi.name, "dtype": None, "dims": None}
    if vi.type.HasField("tensor_type"):
        tt = vi.type.tensor_type
        out["dtype"] = int(tt.elem_type) if tt.elem_type else None
        if tt.HasField("shape"):
            out["dims"] = [dim_fact(d) for d in tt.shape.dim]
    return out


def attribute_facts(a, base_dir):
    A = onnx.AttributeProto
    f = {"name": a.name, "kind": int(a.type)}
    if a.type == A.FLOAT:
        f["value"] = float(np.float32(a.f))
    elif a.type == A.INT:
        f["value"] = int(a.i)
    elif a.type == A.STRING:
        f["value"] = list(a.s)
    elif a.type == A.FLOATS:
        f["value"] = [float(np.float32(v)) for v in a.floats]
    elif a.type == A.INTS:
        f["value"] = [int(v) for v in a.ints]
    elif a.type == A.STRINGS:
        f["value"] = [list(s) for s in a.strings]
    elif a.type == A.TENSOR:
        f["value"] = tensor_facts_dir(a.t, base_dir)
    elif a.type == A.TENSORS:
        f["value"] = [tensor_facts_dir(t, base_dir) for t in a.tensors]
    elif a.type == A.GRAPH:
        f["value"] = graph_facts(a.g, base_dir)
    elif a.type == A.GRAPHS:
        f["value"] = [graph_facts(g, base_dir) for g in a.graphs]
    return f


def tensor_facts_dir(t, base_dir):
    arr = numpy_helper.to_array(t, base_dir=base_dir)
    if t.data_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16):
        arr = arr.astype(np.float32)
    flat = arr.astype(np.float64).ravel()
    return {
        "name": t.name,
        "dtype": int(t.data_type),
        "dims": [int(d) for d in t.dims],
        "sum": float(flat.sum()),
        "first": [float(v) for v in flat[:8]],
        "count": int(arr.size),
    }


def graph_facts(g, base_dir):
    inits = {t.name for t in g.initializer}
    return {
        "name": g.name,
        "nodes": [
            {
                "name": n.name,
                "op_type": n.op_type,
                "domain": n.domain,
                "inputs": list(n.input),
                "outputs": list(n.output),
                "attributes": [attribute_facts(a, base_dir) for a in n.attribute],
            }
            for n in g.node
        ],
        # Real inputs only: inputs that have an initializer of the same name are weights.
        "inputs": [value_info_facts(v) for v in g.input if v.name not in inits],
        "outputs": [value_info_facts(v) for v in g.output],
        "value_info": [value_info_facts(v) for v in g.value_info],
        "initializers": sorted((tensor_facts_dir(t, base_dir) for t in g.initializer), key=lambda x: x["name"]),
    }


def model_facts(path):
    m = onnx.load(path, load_external_data=False)
    base_dir = os.path.dirname(path)
    return {
        "ir_version": int(m.ir_version),
        "producer_name": m.producer_name,
        "producer_version": m.producer_version,
        "opsets": {o.domain: int(o.version) for o in m.opset_import},
        "graph": graph_facts(m.graph, base_dir),
    }


def write_facts(model_path, json_path):
    with open(json_path, "w") as f:
        json.dump(model_facts(model_path), f, indent=1, sort_keys=True)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# Models


def typed_fields_model():
    """Initializers in raw_data and in every typed field, one per data type."""
    rng = np.random.default_rng(7)
    inits = []
    specs = [  # (name, dtype, numpy values, raw)
        ("f32_float_data", TensorProto.FLOAT, rng.standard_normal((2, 3)).astype(np.float32), False),
        ("f32_raw", TensorProto.FLOAT, rng.standard_normal((3, 5)).astype(np.float32), True),
        ("i32_int32_data", TensorProto.INT32, np.array([-7, 0, 2**31 - 1, -(2**31)], np.int32), False),
        ("i16_int32_data", TensorProto.INT16, np.array([[-300, 5], [32767, -32768]], np.int16), False),
        ("i8_int32_data", TensorProto.INT8, np.array([-128, -1, 0, 127], np.int8), False),
        ("u8_int32_data", TensorProto.UINT8, np.array([0, 1, 200, 255], np.uint8), False),
        ("u16_int32_data", TensorProto.UINT16, np.array([0, 65535, 1234], np.uint16), False),
        ("bool_int32_data", TensorProto.BOOL, np.array([True, False, True], np.bool_), False),
        ("f16_int32_data", TensorProto.FLOAT16, np.array([1.5, -2.25, 65504.0, 0.0], np.float16), False),
        ("bf16_int32_data", TensorProto.BFLOAT16, np.array([1.0, -3.0, 0.5], np.float32), False),
        ("i64_int64_data", TensorProto.INT64, np.array([-(2**62), 3, 2**40], np.int64), False),
        ("f64_double_data", TensorProto.DOUBLE, np.array([1e-300, -2.5, 3.25], np.float64), False),
        ("u32_uint64_data", TensorProto.UINT32, np.array([0, 2**32 - 1, 17], np.uint32), False),
        ("u64_uint64_data", TensorProto.UINT64, np.array([2**63 + 5, 1], np.uint64), False),
        ("i64_raw", TensorProto.INT64, np.array([[1, -2], [3, -4]], np.int64), True),
        ("f64_raw", TensorProto.DOUBLE, np.array([0.125, -8.0, 1e10], np.float64), True),
        ("f16_raw", TensorProto.FLOAT16, np.array([0.5, -1.0, 2.0], np.float16), True),
        ("u8_raw_odd", TensorProto.UINT8, np.arange(7, dtype=np.uint8), True),
        ("scalar_raw", TensorProto.FLOAT, np.array(4.5, np.float32), True),
        ("empty_raw", TensorProto.FLOAT, np.zeros((0, 3), np.float32), True),
    ]
    for name, dtype, arr, raw in specs:
        if dtype == TensorProto.BFLOAT16:
            t = helper.make_tensor(name, dtype, arr.shape, arr.tolist(), raw=False)
        elif raw:
            t = numpy_helper.from_array(arr, name)
            assert t.HasField("raw_data")
        else:
            t = helper.make_tensor(name, dtype, arr.shape, arr.ravel().tolist(), raw=False)
            assert not t.HasField("raw_data")
        inits.append(t)
    nodes = [helper.make_node("Identity", [t.name], [t.name + "_out"], name="id_" + t.name) for t in inits]
    outputs = [helper.make_tensor_value_info(t.name + "_out", t.data_type, list(t.dims)) for t in inits]
    g = helper.make_graph(nodes, "typed", [], outputs, initializer=inits)
    m = helper.make_model(g, producer_name="swerve-fixtures", producer_version="1.0",
                          opset_imports=[helper.make_opsetid("", 17)])
    return m


def narrow_types_model():
    """Initializers of the narrow types (float8, float4, int4, int2), packed in raw_data and in
    int32_data (one packed byte per entry for the 4- and 2-bit types), odd element counts included."""
    import ml_dtypes

    T = TensorProto
    f8 = np.array([0.5, -1.75, 448.0, -0.0, 0.015625, 2.0**-9, 3.0], np.float32)  # 2^-9: smallest subnormal
    specs = [  # (name, dtype, values as numpy of the ml_dtypes type, raw)
        ("e4m3fn_raw", T.FLOAT8E4M3FN, f8.astype(ml_dtypes.float8_e4m3fn), True),
        ("e4m3fn_int32_data", T.FLOAT8E4M3FN, f8.astype(ml_dtypes.float8_e4m3fn), False),
        ("e4m3fnuz_raw", T.FLOAT8E4M3FNUZ, np.array([0.5, -240.0, 0.0078125], np.float32).astype(ml_dtypes.float8_e4m3fnuz), True),
        ("e5m2_raw", T.FLOAT8E5M2, np.array([57344.0, -0.75, 2.0**-16, 1.25], np.float32).astype(ml_dtypes.float8_e5m2), True),
        ("e5m2fnuz_int32_data", T.FLOAT8E5M2FNUZ, np.array([-57344.0, 2.0**-17, 6.0], np.float32).astype(ml_dtypes.float8_e5m2fnuz), False),
        ("e8m0_raw", T.FLOAT8E8M0, np.array([2.0**-127, 1.0, 2.0**127, 0.25], np.float32).astype(ml_dtypes.float8_e8m0fnu), True),
        ("e2m1_raw_odd", T.FLOAT4E2M1, np.array([[0.5, -6.0, 1.5], [-0.0, 3.0, 4.0], [-1.0, 2.0, 0.0]], np.float32).astype(ml_dtypes.float4_e2m1fn), True),
        ("int4_raw_odd", T.INT4, np.array([-8, 7, -1, 0, 3], ml_dtypes.int4), True),
        ("int4_int32_data_odd", T.INT4, np.array([[-8, 7, -1], [0, 3, -5], [1, 2, -2]], ml_dtypes.int4), False),
        ("uint4_raw", T.UINT4, np.array([0, 15, 9, 1], ml_dtypes.uint4), True),
        ("int2_raw_odd", T.INT2, np.array([-2, 1, -1, 0, 1], ml_dtypes.int2), True),
        ("int2_int32_data", T.INT2, np.array([1, -2, -1, 0, 0, 1], ml_dtypes.int2), False),
        ("uint2_int32_data_odd", T.UINT2, np.array([3, 0, 2, 1, 3], ml_dtypes.uint2), False),
    ]
    inits = []
    for name, dtype, arr, raw in specs:
        if raw:
            t = numpy_helper.from_array(arr, name)
            assert t.HasField("raw_data")
        else:
            t = helper.make_tensor(name, dtype, arr.shape, arr.ravel().tolist(), raw=False)
            assert not t.HasField("raw_data") and len(t.int32_data) > 0
        assert t.data_type == dtype
        inits.append(t)
    nodes = [helper.make_node("Identity", [t.name], [t.name + "_out"], name="id_" + t.name) for t in inits]
    outputs = [helper.make_tensor_value_info(t.name + "_out", t.data_type, list(t.dims)) for t in inits]
    g = helper.make_graph(nodes, "narrow", [], outputs, initializer=inits)
    return helper.make_model(g, producer_name="swerve-fixtures", producer_version="1.0",
                             opset_imports=[helper.make_opsetid("", 25)])


def attributes_model():
    """A node with every attribute kind, an If with subgraphs, symbolic/unknown dims, a custom domain."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", None, 4])
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None, 4])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)  # no shape at all

    then_g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["then_out"], name="then_relu")], "then_branch", [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, ["batch", None, 4])])
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["else_out"], name="else_neg"),
         helper.make_node("Constant", [], ["c"], name="else_const",
                          value=helper.make_tensor("cv", TensorProto.FLOAT, [2], [1.0, 2.0]))],
        "else_branch", [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, ["batch", None, 4])],
        initializer=[numpy_helper.from_array(np.array([9.0], np.float32), "else_w")])
    if_node = helper.make_node("If", ["cond"], ["y"], name="the_if", then_branch=then_g, else_branch=else_g)

    tp = helper.make_tensor_type_proto(TensorProto.FLOAT, [2])
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("sv", TensorProto.FLOAT, [2], [1.0, 2.0]),
        helper.make_tensor("si", TensorProto.INT64, [2], [0, 3]), [5])
    custom = helper.make_node(
        "Everything", ["x"], ["z"], name="every_attr", domain="com.example",
        f=0.25, i=-42, s=b"hello\x00world", t=numpy_helper.from_array(np.arange(6, dtype=np.int64).reshape(2, 3), "t"),
        g=then_g, floats=[1.5, -2.0, 3.0], ints=[1, -1, 2**40], strings=[b"a", b"", b"ccc"],
        tensors=[numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "t0"),
                 helper.make_tensor("t1", TensorProto.INT32, [3], [4, 5, 6])],
        graphs=[then_g, else_g],
    )
    custom.attribute.append(helper.make_attribute("empty_ints", [], attr_type=onnx.AttributeProto.INTS))
    sp = custom.attribute.add()
    sp.name, sp.type = "sparse", onnx.AttributeProto.SPARSE_TENSOR
    sp.sparse_tensor.CopyFrom(sparse)
    tpa = custom.attribute.add()
    tpa.name, tpa.type = "type", onnx.AttributeProto.TYPE_PROTO
    tpa.tp.CopyFrom(tp)

    g = helper.make_graph([if_node, custom], "attrs", [x, cond], [y, z],
                          value_info=[helper.make_tensor_value_info("mid", TensorProto.INT64, [3, "n"])])
    return helper.make_model(g, producer_name="swerve-fixtures", producer_version="2.5",
                             opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 3)])


def ir3_model():
    """IR 3 lists the weights as graph inputs too; only `data` is a real input."""
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, "W")
    b = numpy_helper.from_array(np.array([0.5, -0.5, 1.0], np.float32), "B")
    data = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 4])
    inputs = [data, helper.make_tensor_value_info("W", TensorProto.FLOAT, [3, 4]),
              helper.make_tensor_value_info("B", TensorProto.FLOAT, [3])]
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3])
    g = helper.make_graph([helper.make_node("Gemm", ["data", "W", "B"], ["out"], transB=1)], "ir3", inputs,
                          [out], initializer=[w, b])
    m = helper.make_model(g, producer_name="old-exporter", opset_imports=[helper.make_opsetid("", 8)])
    m.ir_version = 3
    return m


def external_model():
    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "fc1.weight")
    b1 = numpy_helper.from_array(rng.standard_normal((8,)).astype(np.float32), "fc1.bias")
    w2 = numpy_helper.from_array(rng.standard_normal((2, 8)).astype(np.float32), "fc2.weight")
    shape = numpy_helper.from_array(np.array([-1, 4], np.int64), "shape")
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["x2"]),
        helper.make_node("Gemm", ["x2", "fc1.weight", "fc1.bias"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("MatMul", ["hr", "fc2_t"], ["y"]),
        helper.make_node("Transpose", ["fc2.weight"], ["fc2_t"]),
    ]
    g = helper.make_graph(nodes, "external", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
                          initializer=[w1, b1, w2, shape])
    return helper.make_model(g, producer_name="swerve-fixtures", opset_imports=[helper.make_opsetid("", 17)])


def standalone_tensors(out_dir):
    arrays = {
        "tensor_f32.pb": (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7.5, "t_f32"),
        "tensor_i64.pb": (np.array([[5, -6, 2**50]], np.int64), "t_i64"),
        "tensor_bool_scalar.pb": (np.array(True), "t_bool"),
    }
    facts = {}
    for fname, (arr, name) in arrays.items():
        t = numpy_helper.from_array(arr, name)
        with open(os.path.join(out_dir, fname), "wb") as f:
            f.write(t.SerializeToString())
        back = numpy_helper.to_array(onnx.load_tensor(os.path.join(out_dir, fname)))
        facts[fname] = {"name": name, "dtype": int(t.data_type), "dims": list(arr.shape),
                        "values": [float(v) for v in back.astype(np.float64).ravel()]}
    with open(os.path.join(out_dir, "tensors.json"), "w") as f:
        json.dump(facts, f, indent=1, sort_keys=True)
        f.write("\n")


def torch_mlp(out_dir):
    import torch

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(6, 16)
            self.fc2 = torch.nn.Linear(16, 3)

        def forward(self, x):
            return torch.softmax(self.fc2(torch.relu(self.fc1(x))), dim=-1)

    torch.manual_seed(0)
    model = MLP().eval()
    d = os.path.join(out_dir, "torch_mlp")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    path = os.path.join(d, "model.onnx")
    # The default (dynamo) exporter. It inlines weights this small unless asked for external data.
    torch.onnx.export(model, (torch.randn(2, 6),), path, dynamo=True, external_data=True,
                      input_names=["x"], output_names=["probs"],
                      dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    assert os.path.exists(path + ".data"), "torch did not write model.onnx.data"
    write_facts(path, os.path.join(out_dir, "torch_mlp.json"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch", action="store_true", help="also export the torch MLP (needs .venv-export)")
    ap.add_argument("--torch-only", action="store_true")
    args = ap.parse_args()
    os.makedirs(ROOT, exist_ok=True)
    if not args.torch_only:
        for name, make in [("typed", typed_fields_model), ("narrow", narrow_types_model), ("attributes", attributes_model),
                           ("ir3", ir3_model)]:
            path = os.path.join(ROOT, name + ".onnx")
            onnx.save_model(make(), path)
            write_facts(path, os.path.join(ROOT, name + ".json"))
        d = os.path.join(ROOT, "external")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        path = os.path.join(d, "model.onnx")
        onnx.save_model(external_model(), path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx.data", size_threshold=0)
        write_facts(path, os.path.join(ROOT, "external.json"))
        standalone_tensors(ROOT)
    if args.torch or args.torch_only:
        torch_mlp(ROOT)


if __name__ == "__main__":
    sys.exit(main())
