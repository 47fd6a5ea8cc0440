import Glibc
import Tensors

/// Measures what JSON costs per request: parsing a V2 body of `floats` FP32 values and decoding
/// them into a tensor, with the request parser and with jansson (the reference), in one run.
/// Used by `swerve bench-json`; figures go to docs/benchmarks.md.
public enum ParseBenchmark {
    public struct Result: Sendable {
        public let oursMicros: Double
        public let janssonMicros: Double
    }

    public static func run(floats: Int, iterations: Int) -> Result {
        var seed: UInt64 = 42
        var values: [String] = []
        for _ in 0..<floats {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            values.append(String(Float(seed >> 40) / Float(1 << 24)))
        }
        let body = Array(
            ("{\"inputs\":[{\"name\":\"x\",\"shape\":[1,\(floats)],\"datatype\":\"FP32\",\"data\":["
                + values.joined(separator: ",") + "]}]}").utf8)
        func median(_ work: () -> Void) -> Double {
            var times: [Double] = []
            for _ in 0..<iterations {
                var a = timespec(), b = timespec()
                clock_gettime(CLOCK_MONOTONIC, &a)
                work()
                clock_gettime(CLOCK_MONOTONIC, &b)
                times.append(Double(b.tv_sec - a.tv_sec) * 1e6 + Double(b.tv_nsec - a.tv_nsec) / 1e3)
            }
            return times.sorted()[times.count / 2]
        }
        var sink = 0
        let ours = median {
            let doc = try! JSONDocument(parsing: body)
            let data = doc.rootValue["inputs"]![0]["data"]!
            sink &+= try! TensorJSON.decode(data, dataType: .float32, shape: [1, floats], what: "x").count
        }
        let reference = median {
            let doc = try! JanssonDocument(parsing: body)
            var out = [Float](repeating: 0, count: floats)
            let data = doc.rootValueForBenchmark["inputs"]![0]["data"]!
            for i in 0..<data.count { out[i] = Float(data[i].double!) }
            sink &+= out.count
        }
        precondition(sink > 0)
        return Result(oursMicros: ours, janssonMicros: reference)
    }
}

extension JanssonDocument {
    var rootValueForBenchmark: JanssonValue { JanssonValue(pointer: root, document: self) }
}
