import Tensors
import Testing

@testable import ONNX

/// raw_data is borrowed from the mapping when aligned to the element size, copied when not.
@Suite struct ZeroCopyTests {
    @Test func alignedRawDataIsBorrowedUnalignedIsCopied() throws {
        let values: [Float] = [1.5, -2, 3.25, 1e-3]
        let raw = values.withUnsafeBytes { Array($0) }
        var sawBorrowed = false, sawCopied = false
        for nameLength in 1...8 {
            let proto = tensorProto(name: String(repeating: "n", count: nameLength), dims: [4], dataType: 1, raw: raw)
            let file = MappedFile(copying: proto.bytes, path: "t.pb")
            let context = DecodeContext(file: file, directory: nil)
            var r = context.reader(.tensor, label: "tensor")
            let t = try TensorDecoder.decode(&r, context: context).tensor
            #expect(t.scalars(as: Float.self) == values)
            let offset = Int(bitPattern: t.storage.bytes) - Int(bitPattern: file.base)
            let payloadOffset = proto.bytes.count - raw.count  // raw_data is the last field
            if payloadOffset % 4 == 0 {
                #expect(offset == payloadOffset, "aligned raw_data should be borrowed from the file")
                sawBorrowed = true
            } else {
                #expect(offset < 0 || offset >= file.count, "unaligned raw_data should be copied")
                #expect(Int(bitPattern: t.storage.bytes) % 4 == 0)
                sawCopied = true
            }
        }
        #expect(sawBorrowed && sawCopied)
    }

    @Test func safeRelativePaths() throws {
        #expect(try DecodeContext.safeRelativePath("a/./b//c.data", for: "t") == "a/b/c.data")
        #expect(try DecodeContext.safeRelativePath("a/../c.data", for: "t") == "c.data")
        #expect(throws: DecodeFailure.self) { try DecodeContext.safeRelativePath("a/../../c", for: "t") }
        #expect(throws: DecodeFailure.self) { try DecodeContext.safeRelativePath("/abs", for: "t") }
        #expect(ONNXLoader.directory(of: "m.onnx") == "")
        #expect(ONNXLoader.directory(of: "/m.onnx") == "/")
        #expect(ONNXLoader.directory(of: "a/b/m.onnx") == "a/b")
    }
}
