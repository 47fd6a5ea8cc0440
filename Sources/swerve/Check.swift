import ArgumentParser
import Engine
import Foundation
import ONNX
import Tensors

/// `swerve check MODEL.onnx`: says whether Swerve can serve a model and why not, without a server.
///
/// Prints the model's interface (symbolic dimensions by name), opsets, IR version, producer, operator
/// counts and the operators the engine lacks; then builds a session and runs one inference on
/// generated inputs, printing the output shapes and the times. Exits 1 when the model cannot be
/// served, 64 for a bad command line. `swerve check --list-ops` lists the supported operators.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that a model can be served: interface, operators, one inference.",
        discussion: """
            Symbolic dimensions are 1 unless set with --dim NAME=VALUE (repeatable). Float inputs \
            get uniform values in [0, 1) from a fixed seed, integer inputs 1 (a valid index and an \
            'attend' mask), booleans true. Exit status: 0 servable, 1 not servable, 64 usage error.
            """)

    @Argument(help: "The ONNX model file (model.onnx; external data is read from its folder).")
    var model: String?

    @Flag(help: "List the operators the engine supports, then exit.")
    var listOps = false

    @Flag(help: "With --list-ops: print the table of docs/operators.md (Markdown) instead.")
    var markdown = false

    @Option(name: .customLong("dim"), help: "Value of a symbolic dimension, NAME=VALUE (e.g. batch=8).")
    var dims: [String] = []

    @Option(help: "Engine threads for the inference. [default: 1]")
    var threads: Int = 1

    func validate() throws {
        if !listOps && model == nil { throw ValidationError("give a model file (swerve check MODEL.onnx) or --list-ops") }
        guard threads > 0 else { throw ValidationError("--threads must be positive") }
        _ = try FeedGenerator.parseDims(dims)
    }

    func run() throws {
        if listOps {
            let lines = markdown ? Self.operatorTable(OperatorRegistry.cpu) : Self.operatorList(OperatorRegistry.cpu)
            print(lines.joined(separator: "\n"))
            return
        }
        guard let path = model else { throw ExitCode(2) }
        let overrides = try FeedGenerator.parseDims(dims)

        let clock = ContinuousClock()
        let loadStart = clock.now
        let graphModel: GraphModel
        do {
            graphModel = try ONNXLoader.load(path: path)
        } catch let error as ONNXError {
            Self.fail("cannot be served: \(error)")  // names the file itself
        } catch {
            Self.fail("\(path) cannot be served: \(error)")
        }
        let decoded = clock.now
        let report = CheckReport(model: graphModel)
        print(report.lines(path: path, fileBytes: Self.folderBytes(path)).joined(separator: "\n"))

        let session: InferenceSession
        do {
            session = try InferenceSession(model: graphModel, options: SessionOptions(blasThreads: threads))
        } catch {
            Self.fail("\(path) cannot be served: \(error)")
        }
        let ready = clock.now
        print("load        \(Self.ms(ready - loadStart)) (decode \(Self.ms(decoded - loadStart)), plan \(Self.ms(ready - decoded)))")

        let feeds: [String: Tensor]
        do {
            feeds = try FeedGenerator(overrides: overrides).feeds(for: session.inputs)
        } catch {
            Self.fail("\(path): cannot make inputs for one inference: \(error)")
        }
        for (name, t) in feeds.sorted(by: { $0.key < $1.key }) {
            print("input       \(name) \(t.dataType.v2Name) \(t.shape)")
        }
        var outputs: [String: Tensor] = [:]
        var times: [Duration] = []
        for _ in 0..<2 {
            let start = clock.now
            do {
                outputs = try session.run(feeds)
            } catch {
                Self.fail("\(path) loads but inference failed: \(error)")
            }
            times.append(clock.now - start)
        }
        for info in session.outputs {
            guard let t = outputs[info.name] else { continue }
            print("output      \(info.name) \(t.dataType.v2Name) \(t.shape)\(Self.summary(t))")
        }
        print("inference   \(Self.ms(times[0])) first run, \(Self.ms(times[1])) second run (\(threads) BLAS thread(s))")
        print("OK: \(path) can be served")
    }

    /// The `--list-ops` text: one line per operator record.
    static func operatorList(_ registry: OperatorRegistry) -> [String] {
        let records = registry.allRecords
        let newest = OperatorRegistry.newestOpset
        var lines = [
            "Supported operators (default ONNX domain 'ai.onnx' unless qualified), \(records.count), opsets as of onnx \(OperatorRegistry.onnxRelease):"
        ]
        let width = (records.map(\.qualifiedName.count).max() ?? 0) + 2
        for record in records {
            let name = record.qualifiedName.padding(toLength: width, withPad: " ", startingAt: 0)
            let changes = record.domain.isEmpty ? OperatorRegistry.opsetChanges(of: record.opType) ?? [] : []
            let changed =
                record.domain.isEmpty
                ? " (changed at \(changes.map(String.init).joined(separator: ", ")))" : " (of domain \(record.domain))"
            lines.append(
                "  \(name)opsets \(record.opsets.lowerBound)-\(record.opsets.upperBound)\(changed); "
                    + "types \(typeList(record.elementTypes))")
        }
        lines.append("""
            Each kernel reads the model's opset and follows that version's definition, for the element \
            types listed (those of the operator's main input). Within those versions a kernel refuses \
            what it does not implement, naming the operator, its opset and the node. Models importing an \
            opset above \(newest) are refused; of the other domains only the operators listed with their \
            domain are supported (not ai.onnx.ml or com.microsoft). The full table, with how each output shape is known, how each operator \
            treats batch rows and its fusion role: docs/operators.md (swerve check --list-ops --markdown).
            """)
        return lines
    }

    /// The operator table of docs/operators.md, generated from the records.
    static func operatorTable(_ registry: OperatorRegistry) -> [String] {
        var lines = [
            "<!-- Generated by `swerve check --list-ops --markdown` from the operator records; do not edit by hand. -->",
            "# Supported operators",
            "",
            "\(registry.allRecords.count) operators, of the default ONNX domain unless their name says another, opsets as of onnx \(OperatorRegistry.onnxRelease). "
                + "Types: the element types of the operator's main input (FP16 and BF16 are held as FP32 inside, docs/architecture.md, \"16-bit floats\"; \"narrow\" types are float8, float4, int4 and int2, \"Narrow element types\" there). Output shape: what it follows from, "
                + "for the shape plans (docs/architecture.md). Batch rows: how the operator treats the rows of "
                + "a batch, for running one in slices. Fusion: what the optimizer does with it.",
            "",
            "| operator | opsets | types | output shape | batch rows | fusion |",
            "|---|---|---|---|---|---|",
        ]
        for r in registry.allRecords {
            lines.append(
                "| \(r.qualifiedName) | \(r.opsets.lowerBound)-\(r.opsets.upperBound) | \(typeList(r.elementTypes)) | "
                    + "\(r.outputShape.rawValue) | \(r.batchRows.rawValue) | \(r.fusion.rawValue) |")
        }
        return lines
    }

    static func typeList(_ types: [DataType]) -> String {
        // "Narrow" types: float8, float4, int4, int2 (docs/architecture.md, "Narrow element types").
        if Set(types) == Set(DataType.allCases.filter { $0 != .string }) { return "all but STRING (narrow types too)" }
        return Set(types) == Set(DataType.allNumeric) ? "all but STRING and narrow" : types.map(\.v2Name).joined(separator: ", ")
    }

    /// `min -0.52 max 0.71` for float outputs, `values 3 7 ...` for small integer ones.
    static func summary(_ t: Tensor) -> String {
        guard t.count > 0 else { return " (empty)" }
        let values = t.doubleValues()
        if t.dataType.isFloatingPoint {
            let finite = values.filter(\.isFinite)
            let bad = values.count - finite.count
            let range = finite.isEmpty ? "" : " min \(Float(finite.min()!)) max \(Float(finite.max()!))"
            return range + (bad > 0 ? " (\(bad) NaN/Inf values)" : "")
        }
        let shown = values.prefix(8).map { String(Int64($0)) }.joined(separator: " ")
        return " values \(shown)\(values.count > 8 ? " ..." : "")"
    }

    static func ms(_ d: Duration) -> String {
        let (s, atto) = d.components
        return String(format: "%.2f ms", Double(s) * 1000 + Double(atto) / 1e15)
    }

    /// Size of the model file plus its external data files (every other file in its folder).
    static func folderBytes(_ path: String) -> Int? {
        let url = URL(fileURLWithPath: path)
        guard let size = try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int else { return nil }
        let folder = url.deletingLastPathComponent()
        let others = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        let data = others.filter { $0.hasPrefix(url.lastPathComponent) && $0 != url.lastPathComponent }
            .compactMap { try? FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent($0).path)[.size] as? Int }
        return size + data.reduce(0, +)
    }

    /// Prints `FAILED: message` to standard error and exits 1.
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("FAILED: \(message)\n".utf8))
        Foundation.exit(1)
    }
}
