import Tensors

/// TfIdfVectorizer (opset 9) on int32 or int64 token ids: counts the n-grams of `pool_int64s` in
/// each row of X (a [C] row or a [B, C] batch) and writes one float32 per n-gram column
/// (`ngram_indexes`): its count (TF), its weight when present (IDF), or weight times count (TFIDF).
/// N-grams run from `min_gram_length` to `max_gram_length` tokens, their tokens `skip + 1` apart
/// for every skip up to `max_skip_count` (unigrams counted once). String tokens (`pool_strings`)
/// are refused at load: the engine holds no string tensors.
///
/// The pool is read once into a trie at load; a run only walks it. Immutable; safe to share.
struct TfIdfVectorizerKernel: BufferedKernel {
    enum Mode: String { case tf = "TF", idf = "IDF", tfidf = "TFIDF" }

    let mode: Mode
    let minGram: Int
    let maxGram: Int
    let maxSkip: Int
    /// Output columns per row: the largest of `ngram_indexes` plus one.
    let columns: Int
    /// Per output column (empty: no weights).
    let weights: [Float]
    let trie: NgramTrie

    init(context: NodeContext) throws {
        try context.requireInputs(1)
        if context.has("pool_strings") {
            throw context.invalid(
                "has pool_strings: string tensors are not supported by the engine; map the tokens to int64 ids "
                    + "(pool_int64s) and feed an int32 or int64 input")
        }
        let modeName = try context.string("mode", default: "")
        guard let mode = Mode(rawValue: modeName) else {
            throw context.invalid("has mode '\(modeName)'; it must be TF, IDF or TFIDF")
        }
        self.mode = mode
        guard let minGram = try context.int("min_gram_length"), let maxGram = try context.int("max_gram_length"),
            let maxSkip = try context.int("max_skip_count")
        else {
            throw context.invalid("lacks min_gram_length, max_gram_length or max_skip_count (all three are required)")
        }
        guard minGram >= 1, maxGram >= minGram, maxSkip >= 0 else {
            throw context.invalid(
                "has min_gram_length \(minGram), max_gram_length \(maxGram) and max_skip_count \(maxSkip); "
                    + "it needs 1 <= min_gram_length <= max_gram_length and max_skip_count >= 0")
        }
        (self.minGram, self.maxGram, self.maxSkip) = (minGram, maxGram, maxSkip)
        let pool = try context.ints("pool_int64s", default: [])
        let counts = try context.ints("ngram_counts", default: [])
        let indexes = try context.ints("ngram_indexes", default: [])
        guard !indexes.isEmpty, indexes.allSatisfy({ (0..<(1 << 31)).contains($0) }) else {
            throw context.invalid("needs ngram_indexes: one output column (0 to 2^31 - 1) per n-gram of the pool")
        }
        columns = indexes.max()! + 1
        weights = try context.floats("weights", default: [])
        if !weights.isEmpty && weights.count < columns {
            throw context.invalid(
                "has \(weights.count) weights for \(columns) output columns; give one weight per column or none")
        }
        do {
            trie = try NgramTrie(pool: pool, counts: counts, indexes: indexes, sizes: minGram...maxGram)
        } catch let NgramTrie.PoolError.invalid(message) {
            throw context.invalid(message)
        }
    }

    func run(_ inputs: [Tensor?], into output: Tensor?) throws -> [Tensor] {
        let x = try Check.input(inputs, 0, "X")
        try Check.dataType(x, [.int64, .int32], "X")
        let (rows, length): (Int, Int)
        let shape: [Int]
        switch x.rank {
        case 0: (rows, length, shape) = (1, 1, [columns])
        case 1: (rows, length, shape) = (1, x.shape[0], [columns])
        case 2: (rows, length, shape) = (x.shape[0], x.shape[1], [x.shape[0], columns])
        default:
            throw KernelError.shape("TfIdfVectorizer takes X of shape [C] or [B, C], got \(x.shape); reshape it to 2-D")
        }
        let out = try Output.tensor(output, .float32, shape)
        let y = out.mutableElements(as: Float.self)
        y.update(repeating: 0)
        if x.dataType == .int64 {
            count(x.elements(as: Int64.self), rows: rows, length: length, into: y)
        } else {
            count(x.elements(as: Int32.self), rows: rows, length: length, into: y)
        }
        weigh(y)
        return [out]
    }

    /// Adds one to `y[row, column]` for every n-gram of the pool found in each row.
    private func count<T: BinaryInteger>(
        _ x: UnsafeBufferPointer<T>, rows: Int, length: Int, into y: UnsafeMutableBufferPointer<Float>
    ) {
        for row in 0..<rows {
            let tokens = UnsafeBufferPointer(rebasing: x[(row * length)..<((row + 1) * length)])
            let counts = UnsafeMutableBufferPointer(rebasing: y[(row * columns)..<((row + 1) * columns)])
            var first = minGram
            for skip in 1...(maxSkip + 1) {
                var start = 0
                // Past this start no n-gram of `first` tokens fits in the row.
                while start < length && start + skip * (first - 1) < length {
                    trie.walk(tokens, from: start, step: skip, sizes: first...maxGram) { counts[$0] += 1 }
                    start += 1
                }
                // Unigrams do not depend on the skip: counted on the first pass only.
                if first == 1 {
                    first = 2
                    if first > maxGram { break }
                }
            }
        }
    }

    /// Turns counts into the mode's values, in place.
    private func weigh(_ y: UnsafeMutableBufferPointer<Float>) {
        switch mode {
        case .tf:
            break
        case .idf:
            for i in y.indices where y[i] > 0 { y[i] = weights.isEmpty ? 1 : weights[i % columns] }
        case .tfidf:
            if !weights.isEmpty { for i in y.indices { y[i] *= weights[i % columns] } }
        }
    }
}

/// The n-grams of a TfIdfVectorizer pool as a trie of token ids: node 0 is the root, each edge a
/// token, and a node whose path is a pooled n-gram holds its output column. Built once at load.
struct NgramTrie: Sendable {
    enum PoolError: Error { case invalid(String) }

    /// Per node: its children by token.
    private var children: [[Int64: Int32]] = [[:]]
    /// Per node: the output column of the n-gram ending there, -1 for a prefix only.
    private var column: [Int32] = [-1]

    /// Reads `pool` as ONNX lays it out: `counts[i]` is where the n-grams of i + 1 tokens start;
    /// n-gram number j (from 1, over every size) has column `indexes[j - 1]`. Only sizes in `sizes`
    /// are kept (the others still take their numbers); a repeated n-gram keeps its last column.
    init(pool: [Int], counts: [Int], indexes: [Int], sizes: ClosedRange<Int>) throws {
        var number = 0
        for (i, start) in counts.enumerated() {
            let end = i + 1 < counts.count ? counts[i + 1] : pool.count
            let size = i + 1
            guard 0 <= start, start <= end, end <= pool.count else {
                throw PoolError.invalid(
                    "has ngram_counts \(counts) that do not split its \(pool.count) pool_int64s into ascending ranges")
            }
            guard (end - start) % size == 0 else {
                throw PoolError.invalid(
                    "has \(end - start) pool values for n-grams of \(size) tokens, not a multiple of \(size); "
                        + "check ngram_counts and pool_int64s")
            }
            let grams = (end - start) / size
            guard number + grams <= indexes.count else {
                throw PoolError.invalid(
                    "has more n-grams in its pool than ngram_indexes (\(indexes.count)); give each n-gram a column")
            }
            if sizes.contains(size) {
                for g in 0..<grams {
                    let first = start + g * size
                    insert(pool[first..<(first + size)], column: indexes[number + g])
                }
            }
            number += grams
        }
    }

    private mutating func insert(_ gram: ArraySlice<Int>, column value: Int) {
        var node = 0
        for token in gram {
            let key = Int64(token)
            if let next = children[node][key] {
                node = Int(next)
            } else {
                children.append([:])
                column.append(-1)
                children[node][key] = Int32(children.count - 1)
                node = children.count - 1
            }
        }
        column[node] = Int32(value)
    }

    /// Follows `tokens[start]`, `tokens[start + step]`, ... down the trie for at most
    /// `sizes.upperBound` tokens, calling `found` with the column of each pooled n-gram of a size in
    /// `sizes` on the way.
    @inline(__always)
    func walk<T: BinaryInteger>(
        _ tokens: UnsafeBufferPointer<T>, from start: Int, step: Int, sizes: ClosedRange<Int>, found: (Int) -> Void
    ) {
        var node = 0
        var size = 1
        var item = start
        while size <= sizes.upperBound && item < tokens.count && !children[node].isEmpty {
            guard let next = children[node][Int64(tokens[item])] else { return }
            node = Int(next)
            if size >= sizes.lowerBound && column[node] >= 0 { found(Int(column[node])) }
            size += 1
            item += step
        }
    }
}
