import Foundation
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

    /// Weights the engine has copied need not stay resident in the file mapping: an unaligned
    /// raw_data's pages are dropped once copied, and a borrowed tensor's on request (the session
    /// does that after packing), coming back unchanged when read again. Measured on a real file
    /// mapping through /proc/self/smaps.
    @Test func copiedAndReleasedWeightsLeaveTheResidentSet() throws {
        let values = (0..<65_536).map { Float($0 % 1000) * 0.25 }  // 256 KiB: 64 pages
        let raw = values.withUnsafeBytes { Array($0) }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for nameLength in 1...4 {
            let proto = tensorProto(name: String(repeating: "w", count: nameLength), dims: [65_536], dataType: 1, raw: raw)
            let aligned = (proto.bytes.count - raw.count) % 4 == 0
            let path = dir.appendingPathComponent("w\(nameLength).pb").path
            try Data(proto.bytes).write(to: URL(fileURLWithPath: path))
            let file = try MappedFile(path: path)
            var sum: UInt64 = 0
            for byte in file.bytes { sum &+= UInt64(byte) }  // every page resident
            #expect(sum > 0)
            #expect(try Self.residentKiB(of: file) >= 256)
            let context = DecodeContext(file: file, directory: nil)
            var r = context.reader(.tensor, label: "tensor")
            let t = try TensorDecoder.decode(&r, context: context).tensor
            if aligned {
                #expect(try Self.residentKiB(of: file) >= 256, "a borrowed tensor keeps its pages until released")
                t.releaseResidentPages()
            }
            // At most the partial pages at both ends of the payload stay.
            #expect(try Self.residentKiB(of: file) <= 8, "name length \(nameLength), aligned \(aligned)")
            #expect(t.scalars(as: Float.self) == values)
        }
    }

    /// The resident KiB of `file`'s mapping, from /proc/self/smaps.
    static func residentKiB(of file: MappedFile) throws -> Int {
        // Read to the end: procfs files report size 0, so no size-based read.
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/smaps") else {
            throw DecodeFailure("cannot open /proc/self/smaps")
        }
        defer { try? handle.close() }
        let smaps = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        let start = String(UInt(bitPattern: Int(bitPattern: file.base)), radix: 16)
        var inMapping = false
        for line in smaps.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), line[..<dash].allSatisfy(\.isHexDigit) {
                inMapping = line[..<dash].drop { $0 == "0" } == start
            } else if inMapping, line.hasPrefix("Rss:") {
                return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])!
            }
        }
        throw DecodeFailure("no mapping at \(start) in /proc/self/smaps")
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
