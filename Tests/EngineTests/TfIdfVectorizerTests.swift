import Engine
import Tensors
import Testing

/// TfIdfVectorizer against a direct count written from the ONNX operator's text (each pooled
/// n-gram of n tokens, their positions skip + 1 apart for every skip up to max_skip_count, unigrams
/// once), in the three modes with and without weights, on int32 and int64, 1-D and batched input;
/// and the load errors.
@Suite struct TfIdfVectorizerTests {
    struct Vectorizer {
        var mode = "TF", minGram = 1, maxGram = 2, maxSkip = 0
        var counts: [Int] = [0, 4]
        var indexes: [Int] = [0, 1, 2, 3, 4, 5, 6]
        var pool: [Int] = [2, 3, 5, 4, 5, 6, 7, 8, 6, 7]
        var weights: [Float] = []

        var attributes: [String: Attribute] {
            var a: [String: Attribute] = [
                "mode": .string(Array(mode.utf8)), "min_gram_length": .int(minGram), "max_gram_length": .int(maxGram),
                "max_skip_count": .int(maxSkip), "ngram_counts": .ints(counts), "ngram_indexes": .ints(indexes),
                "pool_int64s": .ints(pool),
            ]
            if !weights.isEmpty { a["weights"] = .floats(weights) }
            return a
        }

        /// Counts per column of one row, from the definition.
        func counts(_ row: [Int]) -> [Float] {
            var column: [[Int]: Int] = [:]
            var number = 0
            for (i, start) in counts.enumerated() {
                let end = i + 1 < counts.count ? counts[i + 1] : pool.count
                let size = i + 1
                for g in 0..<((end - start) / size) {
                    if (minGram...maxGram).contains(size) {
                        column[Array(pool[(start + g * size)..<(start + (g + 1) * size)])] = indexes[number + g]
                    }
                }
                number += (end - start) / size
            }
            var y = [Float](repeating: 0, count: indexes.max()! + 1)
            for size in minGram...maxGram {
                for skip in 0...(size == 1 ? 0 : maxSkip) {
                    for start in row.indices {
                        let positions = (0..<size).map { start + $0 * (skip + 1) }
                        guard positions.last! < row.count, let c = column[positions.map { row[$0] }] else { continue }
                        y[c] += 1
                    }
                }
            }
            return y
        }

        func expected(_ rows: [[Int]]) -> [Float] {
            rows.flatMap { row in
                counts(row).enumerated().map { column, count -> Float in
                    switch mode {
                    case "IDF": return count > 0 ? (weights.isEmpty ? 1 : weights[column]) : 0
                    case "TFIDF": return count * (weights.isEmpty ? 1 : weights[column])
                    default: return count
                    }
                }
            }
        }
    }

    static let rows: [[Int]] = [[1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8], [4, 2, 3, 5, 4, 5, 6, 7, 8, 6, 7, 2]]

    static let vectorizers: [Vectorizer] = [
        Vectorizer(maxSkip: 5),
        Vectorizer(mode: "IDF", maxSkip: 2, weights: [0.5, 1, 1.5, 2, 2.5, 3, 3.5]),
        Vectorizer(mode: "IDF"),
        Vectorizer(mode: "TFIDF", maxSkip: 5, weights: [0.5, 1, 1.5, 2, 2.5, 3, 3.5]),
        Vectorizer(mode: "TFIDF", minGram: 2),
        // Columns out of order and shared, unigrams 3 and 5 skipped (size outside the range) but numbered.
        Vectorizer(mode: "TFIDF", minGram: 2, maxGram: 3, maxSkip: 1, counts: [0, 2, 6], indexes: [9, 9, 4, 0, 4, 2],
                   pool: [3, 5, 6, 7, 8, 6, 7, 8, 6], weights: (0..<10).map { Float($0) + 0.25 }),
        Vectorizer(minGram: 3, maxGram: 3, maxSkip: 3, counts: [0, 0, 0], indexes: [1, 0], pool: [1, 3, 7, 2, 3, 5]),
    ]

    @Test(arguments: vectorizers.indices)
    func tfIdfVectorizerMatchesTheDefinition(_ i: Int) throws {
        let v = Self.vectorizers[i]
        let batch64 = Tensor(Self.rows.flatMap { $0.map(Int64.init) }, shape: [2, 12])
        let y = try runNode(
            "TfIdfVectorizer", inputs: ["x"], feeds: [("x", batch64)], attributes: v.attributes, opset: 9)[0]
        expectClose(y, v.expected(Self.rows), shape: [2, v.indexes.max()! + 1])
        let row32 = Tensor(Self.rows[1].map(Int32.init), shape: [12])
        let y1 = try runNode(
            "TfIdfVectorizer", inputs: ["x"], feeds: [("x", row32)], attributes: v.attributes, opset: 9)[0]
        expectClose(y1, v.expected([Self.rows[1]]), shape: [v.indexes.max()! + 1])
    }

    /// IDF writes the column's weight once an n-gram is seen (however often); TFIDF multiplies the
    /// count by it.
    @Test func idfAndTfIdfWeighTheColumns() throws {
        let x = Tensor([Int64(5), 6, 5, 6, 5, 7], shape: [6])
        var v = Vectorizer(mode: "IDF", minGram: 2, counts: [0, 0], indexes: [0, 1, 2], pool: [5, 6, 6, 5, 7, 8])
        v.weights = [0.5, 2, 4]
        let idf = try runNode("TfIdfVectorizer", inputs: ["x"], feeds: [("x", x)], attributes: v.attributes, opset: 9)[0]
        expectClose(idf, [0.5, 2, 0], shape: [3])
        v.mode = "TFIDF"
        let tfidf = try runNode("TfIdfVectorizer", inputs: ["x"], feeds: [("x", x)], attributes: v.attributes, opset: 9)[0]
        expectClose(tfidf, [1, 4, 0], shape: [3])
    }

    @Test func stringPoolsAreRefusedWithAHint() {
        var attributes = Vectorizer().attributes
        attributes["pool_int64s"] = nil
        attributes["pool_strings"] = .strings([Array("a".utf8)])
        let error = engineError {
            _ = try runNode(
                "TfIdfVectorizer", inputs: ["x"], feeds: [("x", Tensor([Int64(1)], shape: [1]))], attributes: attributes,
                opset: 9)
        }
        guard case .invalidModel(let m)? = error else {
            Issue.record("expected invalidModel, got \(String(describing: error))")
            return
        }
        #expect(m.contains("string tensors are not supported") && m.contains("pool_int64s"), "\(m)")
    }

    @Test func aPoolThatDoesNotSplitIntoNgramsIsRefused() {
        let v = Vectorizer(counts: [0, 3], indexes: [0, 1, 2, 3, 4], pool: [1, 2, 3, 4, 5, 6])
        let error = engineError {
            _ = try runNode(
                "TfIdfVectorizer", inputs: ["x"], feeds: [("x", Tensor([Int64(1)], shape: [1]))], attributes: v.attributes,
                opset: 9)
        }
        guard case .invalidModel(let m)? = error else {
            Issue.record("expected invalidModel, got \(String(describing: error))")
            return
        }
        #expect(m.contains("not a multiple of 2"), "\(m)")
    }
}
