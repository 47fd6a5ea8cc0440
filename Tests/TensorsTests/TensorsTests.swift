import Tensors
import Testing

@Suite struct DataTypeTests {
    @Test func v2NamesRoundTrip() {
        for type in DataType.allCases {
            // The narrow types have no V2 datatype: their names (the ONNX ones) are not accepted.
            #expect(DataType(v2Name: type.v2Name) == (type.isOnWire ? type : nil))
        }
        #expect(DataType.allCases.filter { !$0.isOnWire }.count == 10)
        #expect(DataType(v2Name: "FP32") == .float32)
        #expect(DataType(v2Name: "fp32") == nil)
        #expect(DataType.int64.byteSize == 8)
        #expect(DataType.bool.byteSize == 1)
        #expect(DataType(rawValue: 1) == .float32)  // ONNX TensorProto.FLOAT
        #expect(DataType(rawValue: 7) == .int64)  // ONNX TensorProto.INT64
    }
}

@Suite struct TensorTests {
    @Test func valuesShapesAndViews() {
        let t = Tensor([Float(1), 2, 3, 4, 5, 6], shape: [2, 3])
        #expect(t.count == 6)
        #expect(t.byteCount == 24)
        #expect(t.scalars(as: Float.self) == [1, 2, 3, 4, 5, 6])
        let r = t.reshaped([3, 2])
        #expect(r.shape == [3, 2])
        #expect(r.storage === t.storage)
        #expect(Tensor(scalar: Int64(7)).shape == [])
        #expect(Tensor(scalar: Int64(7)).count == 1)
        #expect(Tensor(zeros: .int32, shape: [0, 4]).count == 0)
    }

    @Test func doubleValuesForEveryNumericType() {
        #expect(Tensor([UInt64.max], shape: [1]).doubleValues() == [Double(UInt64.max)])
        #expect(Tensor([UInt32(4_000_000_000)], shape: [1]).doubleValues() == [4e9])
        #expect(Tensor([Int8(-3)], shape: [1]).doubleValues() == [-3])
        #expect(Tensor([true, false], shape: [2]).doubleValues() == [1, 0])
    }

    @Test func borrowedStorageKeepsItsOwnerAlive() {
        final class Owner { let bytes: UnsafeMutableRawPointer
            init() { bytes = .allocate(byteCount: 8, alignment: 8); bytes.storeBytes(of: Float(2.5), as: Float.self) }
            deinit { bytes.deallocate() }
        }
        var owner: Owner? = Owner()
        let storage = TensorStorage(borrowing: owner!.bytes, byteCount: 4, owner: owner!)
        owner = nil
        let t = Tensor(dataType: .float32, shape: [1], storage: storage)
        #expect(t.scalars(as: Float.self) == [2.5])
    }
}

@Suite struct BroadcastTests {
    @Test func shapes() {
        #expect(Broadcast.shape([[2, 3], [3]]) == [2, 3])
        #expect(Broadcast.shape([[4, 1, 5], [3, 1]]) == [4, 3, 5])
        #expect(Broadcast.shape([[], [2, 2]]) == [2, 2])
        #expect(Broadcast.shape([[2, 3], [2]]) == nil)
        #expect(Broadcast.shape([[0, 3], [1, 3]]) == [0, 3])
    }

    @Test func strides() {
        #expect(Broadcast.strides(of: [3], broadcastTo: [2, 3]) == [0, 1])
        #expect(Broadcast.strides(of: [2, 1], broadcastTo: [2, 3]) == [1, 0])
        #expect(Broadcast.contiguousStrides([2, 3, 4]) == [12, 4, 1])
    }
}
