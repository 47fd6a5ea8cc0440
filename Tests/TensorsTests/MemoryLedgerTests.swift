import Tensors
import Testing

@Suite struct MemoryLedgerTests {
    @Test func chargesUpToTheLimitAndCreditsBack() throws {
        let parent = MemoryLedger(limit: 1000, purpose: "parent", setting: "--parent", parent: nil)
        let ledger = MemoryLedger(limit: 600, purpose: "child", setting: "--child", parent: parent)
        try ledger.charge(500)
        #expect(ledger.bytesHeld == 500 && parent.bytesHeld == 500)
        #expect(throws: MemoryLimitError.self) { try ledger.charge(101) }
        // A refused charge leaves nothing charged, here or on the parent.
        #expect(ledger.bytesHeld == 500 && parent.bytesHeld == 500)
        ledger.credit(500)
        #expect(ledger.bytesHeld == 0 && parent.bytesHeld == 0)
        #expect(ledger.peakBytes == 500)
    }

    @Test func theParentsLimitAppliesToo() throws {
        let parent = MemoryLedger(limit: 100, purpose: "the engine as a whole", setting: "--parent", parent: nil)
        let ledger = MemoryLedger(limit: 1000, purpose: "this request", setting: "--child", parent: parent)
        do {
            try ledger.charge(200)
            Issue.record("a charge past the parent's limit was accepted")
        } catch {
            #expect(error.purpose == "the engine as a whole")
            #expect(error.limit == 100)
        }
        #expect(ledger.bytesHeld == 0 && parent.bytesHeld == 0)
    }

    @Test func storageIsChargedToTheCurrentLedgerUntilFreed() throws {
        let ledger = MemoryLedger(limit: 1 << 20, purpose: "test", setting: "--test", parent: nil)
        try MemoryLedger.withCurrent(ledger) {
            var t: Tensor? = try Tensor(allocating: .float32, shape: [1000], zeroed: true)
            #expect(ledger.bytesHeld == 4000)
            #expect(t!.scalars(as: Float.self).allSatisfy { $0 == 0 })
            t = nil
            #expect(ledger.bytesHeld == 0)
            #expect(throws: MemoryLimitError.self) { _ = try Tensor(allocating: .float32, shape: [1 << 20]) }
        }
        #expect(ledger.bytesHeld == 0)
    }

    @Test func overflowingShapesAreRefusedNotTrapped() {
        #expect(Tensor.checkedElementCount([1 << 32, 1 << 32]) == nil)
        #expect(Tensor.checkedElementCount([3, -1]) == nil)
        #expect(Tensor.checkedByteCount(.float64, [1 << 61]) == nil)
        #expect(Tensor.checkedByteCount(.float32, [2, 3]) == 24)
        #expect(throws: MemoryLimitError.self) { _ = try Tensor(allocating: .float32, shape: [1 << 32, 1 << 32]) }
    }

    @Test func messagesSayHowMuchWasNeeded() {
        let error = MemoryLimitError(
            requested: 64 << 30, held: 0, limit: 6 << 30, purpose: "this request", setting: "--max-request-memory")
        #expect("\(error)".contains("64.0 GiB"))
        #expect("\(error)".contains("6.0 GiB"))
        #expect(MemoryLimits.describe(512) == "512 bytes")
        #expect(MemoryLimits.describe(3 << 19) == "1.5 MiB")
    }
}

@Suite struct ByteCountParsingTests {
    @Test func readsPlainCountsAndSuffixes() {
        #expect(MemoryLimits.parse("1073741824") == 1 << 30)
        #expect(MemoryLimits.parse("4G") == 4 << 30)
        #expect(MemoryLimits.parse("512M") == 512 << 20)
        #expect(MemoryLimits.parse("512MiB") == 512 << 20)
        #expect(MemoryLimits.parse("2gb") == 2 << 30)
        #expect(MemoryLimits.parse("100B") == 100)
        #expect(MemoryLimits.parse("") == nil)
        #expect(MemoryLimits.parse("-5") == nil)
        #expect(MemoryLimits.parse("4X") == nil)
        #expect(MemoryLimits.parse("99999999999T") == nil)
    }
}
