@testable import Engine
import Tensors
import Testing

/// Edge semantics of the quantized operators that ONNX's node tests leave out: rounding half to even
/// and saturation, blocks that do not divide the axis, int32 dequantization, every signedness
/// combination of the integer products with per-row / per-column / per-channel zero points (checked
/// against sums computed here in Int), constant weights (prepared at load) and computed ones.
@Suite struct QuantizedOpTests {
    @Test func quantizeLinearRoundsHalfToEvenAndSaturates() throws {
        let x: [Float] = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1000, -1000, 126.5, 127.5]
        let u = try runNode(
            "QuantizeLinear", inputs: ["x", "s", "z"], feeds: [("x", Tensor(x, shape: [10]))],
            initializers: ["s": Tensor(scalar: Float(1)), "z": Tensor(scalar: UInt8(3))], opset: 13)[0]
        #expect(u.dataType == .uint8)
        // round(x) + 3, clipped to [0, 255]: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2, -2.5 -> -2.
        #expect(u.scalars(as: UInt8.self) == [3, 5, 5, 3, 1, 1, 255, 0, 129, 131])
        let s = try runNode(
            "QuantizeLinear", inputs: ["x", "s", "z"], feeds: [("x", Tensor(x, shape: [10]))],
            initializers: ["s": Tensor(scalar: Float(1)), "z": Tensor(scalar: Int8(0))], opset: 13)[0]
        #expect(s.scalars(as: Int8.self) == [0, 2, 2, 0, -2, -2, 127, -128, 126, 127])
    }

    /// Rows longer than 16 take the 16-lane path: ties, NaN, infinities and out-of-range values
    /// must come out as the scalar definition says, for uint8 and int8, and back through DequantizeLinear.
    @Test(arguments: [false, true])
    func quantizeLinearVectorPathMatchesTheDefinition(_ signed: Bool) throws {
        var x: [Float] = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, .nan, .infinity, -.infinity, 1e9, -1e9, 126.5, 127.5, -128.5]
        var rng = TestRNG(seed: 5)
        while x.count < 53 { x.append(Float(rng.int(in: -700...700)) / 4) }
        let (scale, zero): (Float, Int) = (0.5, signed ? -3 : 130)
        let (lo, hi): (Float, Float) = signed ? (-128, 127) : (0, 255)
        let expected: [Int] = x.map { v in
            let r = (v / scale).rounded(.toNearestOrEven)
            if r.isNaN { return Int(lo) }
            return Int(min(hi, max(lo, r + Float(zero))))
        }
        let zp = signed ? Tensor(scalar: Int8(zero)) : Tensor(scalar: UInt8(zero))
        let q = try runNode(
            "QuantizeLinear", inputs: ["x", "s", "z"], feeds: [("x", Tensor(x, shape: [x.count]))],
            initializers: ["s": Tensor(scalar: scale), "z": zp], opset: 13)[0]
        #expect(Self.ints(q) == expected)
        let back = try runNode(
            "DequantizeLinear", inputs: ["x", "s", "z"], feeds: [("x", q)], initializers: ["s": Tensor(scalar: scale), "z": zp],
            opset: 13)[0]
        #expect(back.scalars(as: Float.self) == expected.map { Float($0 - zero) * scale })
    }

    @Test func blockedQuantizationHandlesARemainderBlock() throws {
        // x [2, 5] along axis 1 in blocks of 2: blocks {0,1}, {2,3}, {4}.
        let x: [Float] = [1, 2, 3, 4, 5, -1, -2, -3, -4, -5]
        let scales: [Float] = [0.5, 1, 2, 0.25, 0.5, 1]
        let q = try runNode(
            "DequantizeLinear", inputs: ["x", "s"], feeds: [("x", Tensor(x.map { Int8($0) }, shape: [2, 5]))],
            initializers: ["s": Tensor(scales, shape: [2, 3])], attributes: ["axis": .int(1), "block_size": .int(2)],
            opset: 21)[0]
        let block = [0, 0, 1, 1, 2]
        let expected: [Float] = (0..<10).map { (i: Int) -> Float in
            let p: Int = (i / 5) * 3 + block[i % 5]
            return x[i] * scales[p]
        }
        #expect(q.scalars(as: Float.self) == expected)
        let error = engineError {
            _ = try runNode(
                "DequantizeLinear", inputs: ["x", "s"], feeds: [("x", Tensor(x.map { Int8($0) }, shape: [2, 5]))],
                initializers: ["s": Tensor(scales, shape: [3, 2])], attributes: ["axis": .int(1), "block_size": .int(2)],
                opset: 21)
        }
        #expect(error.map { "\($0)".contains("[2, 3]") } == true, "\(String(describing: error))")
    }

    @Test func quantizeLinearToFloat8SaturatesUnlessToldNot() throws {
        let x: [Float] = [1, 1000, -1000, 0.3]
        func run(_ saturate: Int) throws -> [UInt8] {
            let y = try runNode(
                "QuantizeLinear", inputs: ["x", "s"], feeds: [("x", Tensor(x, shape: [4]))],
                initializers: ["s": Tensor(scalar: Float(0.5))],
                attributes: ["output_dtype": .int(Int(DataType.float8e4m3fn.rawValue)), "saturate": .int(saturate)], opset: 21)[0]
            #expect(y.dataType == .float8e4m3fn)
            return Array(y.rawBytes)
        }
        // x / 0.5: 2 = 0x40; 2000 and -2000 beyond 448 = 0x7E (0xFE negative) or NaN 0x7F / 0xFF;
        // 0.6 rounds to 0.625 = 0x32.
        #expect(try run(1) == [0x40, 0x7E, 0xFE, 0x32])
        #expect(try run(0) == [0x40, 0x7F, 0xFF, 0x32])
        let back = try runNode(
            "DequantizeLinear", inputs: ["x", "s"], feeds: [("x", try { () throws -> Tensor in
                let t = try Tensor(allocating: .float8e4m3fn, shape: [4])
                t.mutableBytes.copyBytes(from: [0x40, 0x7E, 0xFE, 0x32] as [UInt8])
                return t
            }())],
            initializers: ["s": Tensor(scalar: Float(0.5))], opset: 21)[0]
        #expect(back.scalars(as: Float.self) == [1, 224, -224, 0.3125])
    }

    @Test func float8ZeroPointMustBeZero() throws {
        let zero = try Tensor(allocating: .float8e4m3fn, shape: [])
        zero.mutableBytes[0] = 0x38  // 1.0
        let error = engineError {
            _ = try runNode(
                "QuantizeLinear", inputs: ["x", "s", "z"], feeds: [("x", Tensor([Float(1)], shape: [1]))],
                initializers: ["s": Tensor(scalar: Float(1)), "z": zero], opset: 21)
        }
        #expect(error.map { "\($0)".contains("must be zero") } == true, "\(String(describing: error))")
    }

    @Test func quantizeLinearToInt4SaturatesToItsRange() throws {
        let y = try runNode(
            "QuantizeLinear", inputs: ["x", "s", "z"], feeds: [("x", Tensor([Float](arrayLiteral: -20, -8.5, 0.5, 6.5, 20), shape: [5]))],
            initializers: ["s": Tensor(scalar: Float(1)), "z": { () -> Tensor in
                let t = try! Tensor(allocating: .int4, shape: [])
                t.mutableBytes[0] = UInt8(bitPattern: -1)
                return t
            }()], opset: 21)[0]
        #expect(y.dataType == .int4)
        // round half even, minus 1, clipped to [-8, 7]: -8, -9 -> -8, -1, 5, 7.
        #expect(y.rawBytes.map { Int8(bitPattern: $0) } == [-8, -8, -1, 5, 7])
    }

    @Test func dequantizeLinearOfInt32KeepsLargeValues() throws {
        let x: [Int32] = [Int32.max, Int32.min, 123_456_789, -7]
        let y = try runNode(
            "DequantizeLinear", inputs: ["x", "s"], feeds: [("x", Tensor(x, shape: [4]))],
            initializers: ["s": Tensor(scalar: Float(0.5))], opset: 13)[0]
        #expect(y.scalars(as: Float.self) == x.map { Float($0) * 0.5 })
    }

    /// The range is found 8 lanes at a time; a NaN is skipped there as in the scalar definition.
    @Test func dynamicQuantizeLinearRangeSkipsNaNOnEveryLane() throws {
        for at in [0, 5, 8, 20, 36] {
            var x: [Float] = (0..<37).map { Float($0 % 11) * 0.7 - 2.1 }
            x[at] = .nan
            let finite = x.filter { !$0.isNaN }
            let (lo, hi) = (min(0, finite.min()!), max(0, finite.max()!))
            let out = try runNode(
                "DynamicQuantizeLinear", inputs: ["x"], feeds: [("x", Tensor(x, shape: [37]))], outputs: ["y", "s", "z"], opset: 13)
            #expect(out[1].scalars(as: Float.self) == [(hi - lo) / 255])
        }
    }

    /// Past `parallelElements` the range and the quantization are split between threads: the
    /// result must not depend on the split (the extremes sit in the last and the middle chunk).
    @Test func dynamicQuantizeLinearSplitsWithoutChangingTheResult() throws {
        var rng = TestRNG(seed: 12)
        var x = rng.floats(300_007)
        x[300_000] = 9.5
        x[150_001] = -3.25
        var outputs: [[Tensor]] = []
        for threads in [1, 2, 3] {
            outputs.append(try runNode(
                "DynamicQuantizeLinear", inputs: ["x"], feeds: [("x", Tensor(x, shape: [300_007]))], outputs: ["y", "s", "z"],
                opset: 13, threads: threads))
        }
        let scale = (Float(9.5) - -3.25) / 255
        let zero = (Float(3.25) / scale).rounded(.toNearestOrEven)
        #expect(outputs[0][1].scalars(as: Float.self) == [scale])
        #expect(outputs[0][2].scalars(as: UInt8.self) == [UInt8(zero)])
        let expected = x.map { UInt8(min(255, max(0, ($0 / scale).rounded(.toNearestOrEven) + zero))) }
        for out in outputs {
            #expect(out[0].scalars(as: UInt8.self) == expected)
            #expect(out[1].scalars(as: Float.self) == [scale])
        }
    }

    @Test func dynamicQuantizeLinearOfZerosTakesScaleOne() throws {
        let out = try runNode(
            "DynamicQuantizeLinear", inputs: ["x"], feeds: [("x", Tensor([Float](repeating: 0, count: 4), shape: [4]))],
            outputs: ["y", "s", "z"], opset: 13)
        #expect(out[0].scalars(as: UInt8.self) == [0, 0, 0, 0])
        #expect(out[1].scalars(as: Float.self) == [1])
        #expect(out[2].scalars(as: UInt8.self) == [0])
    }

    /// 8-bit values of `type` (uint8 or int8) from `values` in -128...255, clamped to the type.
    static func eightBit(_ values: [Int], _ signed: Bool, shape: [Int]) -> Tensor {
        signed ? Tensor(values.map { Int8(clamping: $0) }, shape: shape) : Tensor(values.map { UInt8(clamping: $0) }, shape: shape)
    }

    static func ints(_ t: Tensor) -> [Int] {
        t.dataType == .int8 ? t.scalars(as: Int8.self).map(Int.init) : t.scalars(as: UInt8.self).map(Int.init)
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func matMulIntegerMatchesIntegerSums(_ aSigned: Bool, _ bSigned: Bool) throws {
        var rng = TestRNG(seed: 7)
        let (batch, m, k, n) = (2, 5, 37, 6)
        let a = Self.eightBit((0..<(batch * m * k)).map { _ in rng.int(in: -128...255) }, aSigned, shape: [batch, m, k])
        let b = Self.eightBit((0..<(k * n)).map { _ in rng.int(in: -128...255) }, bSigned, shape: [k, n])
        let za = Self.eightBit((0..<m).map { _ in rng.int(in: -20...150) }, aSigned, shape: [m])
        let zb = Self.eightBit((0..<n).map { _ in rng.int(in: -20...150) }, bSigned, shape: [n])
        let (av, bv, zav, zbv) = (Self.ints(a), Self.ints(b), Self.ints(za), Self.ints(zb))
        var expected = [Int32](repeating: 0, count: batch * m * n)
        for t in 0..<batch {
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0
                    for p in 0..<k { s += (av[(t * m + i) * k + p] - zav[i]) * (bv[p * n + j] - zbv[j]) }
                    expected[(t * m + i) * n + j] = Int32(s)
                }
            }
        }
        // B constant (prepared at load) and B fed (prepared per run).
        let constant = try runNode(
            "MatMulInteger", inputs: ["a", "b", "za", "zb"], feeds: [("a", a)], initializers: ["b": b, "za": za, "zb": zb],
            opset: 10)[0]
        #expect(constant.dataType == .int32 && constant.shape == [batch, m, n])
        #expect(constant.scalars(as: Int32.self) == expected)
        let fed = try runNode(
            "MatMulInteger", inputs: ["a", "b", "za", "zb"], feeds: [("a", a), ("b", b)], initializers: ["za": za, "zb": zb],
            opset: 10)[0]
        #expect(fed.scalars(as: Int32.self) == expected)
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func convIntegerMatchesIntegerSums(_ xSigned: Bool, _ wSigned: Bool) throws {
        var rng = TestRNG(seed: 11)
        // 2 images, 4 channels in 2 groups, 6 output channels, 3x3 window, stride 2, padding 1, 7x6 input.
        let (nb, c, h, w, m, group) = (2, 4, 7, 6, 6, 2)
        let (cg, mg) = (c / group, m / group)
        let x = Self.eightBit((0..<(nb * c * h * w)).map { _ in rng.int(in: -128...255) }, xSigned, shape: [nb, c, h, w])
        let wt = Self.eightBit((0..<(m * cg * 9)).map { _ in rng.int(in: -128...255) }, wSigned, shape: [m, cg, 3, 3])
        let zx = Self.eightBit([rng.int(in: 1...100)], xSigned, shape: [])
        let zw = Self.eightBit((0..<m).map { _ in rng.int(in: -10...100) }, wSigned, shape: [m])
        let (xv, wv, zxv, zwv) = (Self.ints(x), Self.ints(wt), Self.ints(zx)[0], Self.ints(zw))
        let (oh, ow) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1)
        var expected = [Int32](repeating: 0, count: nb * m * oh * ow)
        for b in 0..<nb {
            for oc in 0..<m {
                let g = oc / mg
                for y in 0..<oh {
                    for xo in 0..<ow {
                        var s = 0
                        for ic in 0..<cg {
                            for ky in 0..<3 {
                                for kx in 0..<3 {
                                    let (iy, ix) = (y * 2 - 1 + ky, xo * 2 - 1 + kx)
                                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                    let xval = xv[((b * c + g * cg + ic) * h + iy) * w + ix] - zxv
                                    s += xval * (wv[((oc * cg + ic) * 3 + ky) * 3 + kx] - zwv[oc])
                                }
                            }
                        }
                        expected[((b * m + oc) * oh + y) * ow + xo] = Int32(s)
                    }
                }
            }
        }
        let attributes: [String: Attribute] = [
            "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1]), "group": .int(group), "kernel_shape": .ints([3, 3]),
        ]
        // 1 thread: every step alone; 2 and 3: the 4 (image, group) pairs split over threads, as whole pairs.
        for threads in [1, 2, 3] {
            let constant = try runNode(
                "ConvInteger", inputs: ["x", "w", "zx", "zw"], feeds: [("x", x)], initializers: ["w": wt, "zx": zx, "zw": zw],
                attributes: attributes, opset: 10, threads: threads)[0]
            #expect(constant.shape == [nb, m, oh, ow])
            #expect(constant.scalars(as: Int32.self) == expected, "\(threads) threads")
        }
        let fed = try runNode(
            "ConvInteger", inputs: ["x", "w", "zx", "zw"], feeds: [("x", x), ("w", wt)], initializers: ["zx": zx, "zw": zw],
            attributes: attributes, opset: 10)[0]
        #expect(fed.scalars(as: Int32.self) == expected)
    }

    /// QLinearConv on the window shapes with their own paths (1x1 stride 1 reads the channels-last
    /// copy in place; 1x1 stride 2, dilated 3x3 with padding build patch rows), per-channel weight
    /// scales and zero points, an int32 bias, against sums and float32 requantization computed here.
    @Test(arguments: [(1, 1, 0, 1), (1, 2, 0, 1), (3, 1, 2, 2), (3, 2, 1, 1)])
    func qlinearConvMatchesIntegerSumsRequantized(_ k: Int, _ stride: Int, _ pad: Int, _ dilation: Int) throws {
        var rng = TestRNG(seed: 23)
        let (nb, c, h, w, m) = (2, 5, 9, 7, 19)
        let x = Self.eightBit((0..<(nb * c * h * w)).map { _ in rng.int(in: 0...255) }, false, shape: [nb, c, h, w])
        let wt = Self.eightBit((0..<(m * c * k * k)).map { _ in rng.int(in: -128...127) }, true, shape: [m, c, k, k])
        let zx = 37
        let wScales = (0..<m).map { _ in Float(rng.int(in: 1...9)) / 64 }
        let bias = (0..<m).map { _ in Int32(rng.int(in: -500...500)) }
        let (xv, wv) = (Self.ints(x), Self.ints(wt))
        let (xScale, yScale, yZero): (Float, Float, Float) = (0.02, 0.5, 120)
        let span = (k - 1) * dilation + 1
        let (oh, ow) = ((h + 2 * pad - span) / stride + 1, (w + 2 * pad - span) / stride + 1)
        var expected = [UInt8](repeating: 0, count: nb * m * oh * ow)
        for b in 0..<nb {
            for oc in 0..<m {
                let multiplier = xScale * wScales[oc] / yScale
                for y in 0..<oh {
                    for xo in 0..<ow {
                        var s = 0
                        for ic in 0..<c {
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let (iy, ix) = (y * stride - pad + ky * dilation, xo * stride - pad + kx * dilation)
                                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                                    s += (xv[((b * c + ic) * h + iy) * w + ix] - zx) * wv[((oc * c + ic) * k + ky) * k + kx]
                                }
                            }
                        }
                        let v = (Float(Int32(s) + bias[oc]) * multiplier).rounded(.toNearestOrEven) + yZero
                        expected[((b * m + oc) * oh + y) * ow + xo] = UInt8(min(255, max(0, v)))
                    }
                }
            }
        }
        for threads in [1, 2, 3] {
            let out = try runNode(
                "QLinearConv", inputs: ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], feeds: [("x", x)],
                initializers: [
                    "xs": Tensor(scalar: xScale), "xz": Tensor(scalar: UInt8(zx)), "w": wt, "ws": Tensor(wScales, shape: [m]),
                    "wz": Tensor([Int8](repeating: 0, count: m), shape: [m]), "ys": Tensor(scalar: yScale),
                    "yz": Tensor(scalar: UInt8(yZero)), "b": Tensor(bias, shape: [m]),
                ],
                attributes: [
                    "strides": .ints([stride, stride]), "pads": .ints([pad, pad, pad, pad]), "dilations": .ints([dilation, dilation]),
                    "kernel_shape": .ints([k, k]),
                ], opset: 10, threads: threads)[0]
            #expect(out.shape == [nb, m, oh, ow])
            #expect(out.scalars(as: UInt8.self) == expected, "\(threads) threads")
        }
    }

    /// Same-shaped QLinearAdd / QLinearMul take a vectorized loop: it must round as the definition
    /// (float32 centred values times the scale ratios, round half to even, saturate) on every element.
    @Test(arguments: [("QLinearAdd", false), ("QLinearMul", false), ("QLinearAdd", true), ("QLinearMul", true)])
    func qlinearBinarySameShapeMatchesTheDefinition(_ op: String, _ signed: Bool) throws {
        var rng = TestRNG(seed: 17)
        let n = 9000
        let a = Self.eightBit((0..<n).map { _ in rng.int(in: -128...255) }, signed, shape: [3, n / 3])
        let b = Self.eightBit((0..<n).map { _ in rng.int(in: -128...255) }, signed, shape: [3, n / 3])
        let (sa, sb, sc): (Float, Float, Float) = (0.07436571, 0.046617586, op == "QLinearAdd" ? 0.05466321 : 0.9)
        let (za, zb, zc) = signed ? (-3, 5, -1) : (130, 7, 12)
        let (lo, hi): (Float, Float) = signed ? (-128, 127) : (0, 255)
        let (av, bv) = (Self.ints(a), Self.ints(b))
        let expected: [Int] = (0..<n).map { i in
            let x = Float(av[i]) - Float(za)
            let y = Float(bv[i]) - Float(zb)
            let v = op == "QLinearAdd" ? x * (sa / sc) + y * (sb / sc) : x * y * (sa * sb / sc)
            return Int(min(hi - Float(zc), max(lo - Float(zc), v.rounded(.toNearestOrEven))) + Float(zc))
        }
        let zero = { (v: Int) in Self.eightBit([v], signed, shape: []) }
        let out = try runNode(
            op, inputs: ["a", "as", "az", "b", "bs", "bz", "cs", "cz"], feeds: [("a", a), ("b", b)],
            initializers: [
                "as": Tensor(scalar: sa), "az": zero(za), "bs": Tensor(scalar: sb), "bz": zero(zb), "cs": Tensor(scalar: sc),
                "cz": zero(zc),
            ], domain: "com.microsoft", opset: 1)[0]
        #expect(Self.ints(out) == expected)
    }

    @Test func qlinearMatMulRequantizesPerColumn() throws {
        let a = Tensor([UInt8(10), 20, 30, 40], shape: [2, 2])
        let b = Tensor([Int8(1), -2, 3, 4], shape: [2, 2])
        let bScale = Tensor([Float(0.5), 0.25], shape: [2])
        let out = try runNode(
            "QLinearMatMul", inputs: ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], feeds: [("a", a)],
            initializers: [
                "as": Tensor(scalar: Float(0.1)), "az": Tensor(scalar: UInt8(10)), "b": b, "bs": bScale,
                "bz": Tensor([Int8(0), 0], shape: [2]), "ys": Tensor(scalar: Float(0.2)), "yz": Tensor(scalar: UInt8(100)),
            ], opset: 21)[0]
        // (a - 10) = [[0, 10], [20, 30]]; times b = [[30, 40], [110, 80]]; times 0.1 * [0.5, 0.25] / 0.2.
        // Requantized in float32, as onnxruntime does.
        let sums: [Float] = [30, 40, 110, 80]
        let multiplier: [Float] = [Float(0.1) * 0.5 / 0.2, Float(0.1) * 0.25 / 0.2]
        let expected = (0..<4).map { UInt8(min(255, (sums[$0] * multiplier[$0 % 2]).rounded(.toNearestOrEven) + 100)) }
        #expect(out.scalars(as: UInt8.self) == expected)
    }
}

/// The layout transposes of the quantized convolution, on sizes with 16 x 16 blocks and edges.
@Suite struct TransposeTests {
    @Test(arguments: [(1, 1, 1), (16, 16, 1), (37, 53, 1), (64, 200, 1), (5, 3, 4), (37, 53, 4), (33, 17, 2)])
    func transposeMatchesTheDefinition(_ rows: Int, _ columns: Int, _ size: Int) {
        let src = (0..<(rows * columns * size)).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 / 7) }
        var dst = [UInt8](repeating: 0, count: src.count)
        src.withUnsafeBufferPointer { s in
            dst.withUnsafeMutableBufferPointer { d in
                Transpose.bytes(s.baseAddress!, rows: rows, columns: columns, into: d.baseAddress!, elementSize: size)
            }
        }
        var expected = [UInt8](repeating: 0, count: src.count)
        for r in 0..<rows {
            for c in 0..<columns {
                for b in 0..<size { expected[(c * rows + r) * size + b] = src[(r * columns + c) * size + b] }
            }
        }
        #expect(dst == expected)
    }
}
