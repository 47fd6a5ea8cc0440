import Tensors

/// The records of the CPU operators: one declaration each (see `OperatorRecord`). Element types
/// are those of the operator's main input that its kernel implements; the docs' operator table
/// (`docs/operators.md`) is generated from these records (`swerve check --list-ops --markdown`).
extension OperatorRegistry {
    static func makeCPU() -> OperatorRegistry {
        var r = OperatorRegistry()
        let f32: [DataType] = [.float32]
        let real = DataType.realNumbers
        let any = DataType.allNumeric

        // Matrix products: the producers every activation fuses into.
        r.add(OperatorRecord("Gemm", types: GemmKernel.types, shape: .fromInputShapes, rows: .gemm, fusion: .producer) {
            try GemmKernel(context: $0)
        })
        r.add(OperatorRecord("MatMul", types: MatMulKernel.types, shape: .fromInputShapes, rows: .matMul, fusion: .producer) {
            try MatMulKernel(context: $0)
        })
        r.add(OperatorRecord("Conv", types: [.float32, .float64], shape: .fromInputShapes, rows: .rowwise, fusion: .producer) {
            try ConvKernel(context: $0)
        })

        // Elementwise arithmetic with broadcasting.
        r.add(OperatorRecord("Add", types: real, shape: .fromInputShapes, rows: .broadcasting, fusion: .bias) {
            try BinaryKernel(context: $0, op: .add)
        })
        for (name, op) in [("Sub", BinaryKernel.Op.sub), ("Mul", .mul), ("Div", .div)] {
            r.add(OperatorRecord(name, types: real, shape: .fromInputShapes, rows: .broadcasting) {
                try BinaryKernel(context: $0, op: op)
            })
        }
        r.add(OperatorRecord("Pow", types: real, shape: .fromInputShapes, rows: .broadcasting) {
            try PowModKernel(context: $0, isPow: true)
        })
        r.add(OperatorRecord("Mod", types: real, shape: .fromInputShapes, rows: .broadcasting) {
            try PowModKernel(context: $0, isPow: false)
        })
        r.add(OperatorRecord("PRelu", types: PReluKernel.types, shape: .fromInputShapes, rows: .broadcasting) {
            try PReluKernel(context: $0)
        })
        r.add(OperatorRecord("Where", types: any, shape: .fromInputShapes, rows: .broadcasting) {
            try WhereKernel(context: $0)
        })
        for op in [CompareKernel.Op.less, .lessEqual, .greater, .greaterEqual] {
            r.add(OperatorRecord(op.rawValue, types: real, shape: .fromInputShapes, rows: .broadcasting) {
                try CompareKernel(context: $0, op: op)
            })
        }
        r.add(OperatorRecord("Equal", types: real + [.bool], shape: .fromInputShapes, rows: .broadcasting) {
            try CompareKernel(context: $0, op: .equal)
        })
        for op in [CompareKernel.Op.and, .or, .xor] {
            r.add(OperatorRecord(op.rawValue, types: [.bool], shape: .fromInputShapes, rows: .broadcasting) {
                try CompareKernel(context: $0, op: op)
            })
        }
        for op in [VariadicKernel.Op.sum, .max, .min] {
            r.add(OperatorRecord(op.rawValue, types: real, shape: .fromInputShapes, rows: .broadcasting) {
                try VariadicKernel(context: $0, op: op)
            })
        }
        r.add(OperatorRecord("Mean", types: [.float32, .float64], shape: .fromInputShapes, rows: .broadcasting) {
            try VariadicKernel(context: $0, op: .mean)
        })

        // Unary operators, row by row; those with an epilogue fuse into the producer before them.
        for op in [UnaryKernel.Op.tanh, .hardSigmoid, .elu, .selu, .softplus, .erf, .exp, .log, .sqrt, .reciprocal,
            .neg, .abs, .floor, .ceil, .sin, .cos, .tan, .sign, .round, .softsign, .thresholdedRelu, .celu, .mish,
            .shrink]
        {
            r.add(OperatorRecord(op.rawValue, types: UnaryKernel.types(op), shape: .fromInputShapes, rows: .rowwise) {
                try UnaryKernel(context: $0, op: op)
            })
        }
        for op in [UnaryKernel.Op.relu, .sigmoid, .hardSwish, .gelu, .leakyRelu] {
            r.add(
                OperatorRecord(
                    op.rawValue, types: UnaryKernel.types(op), shape: .fromInputShapes, rows: .rowwise, fusion: .activation,
                    epilogue: { Epilogue.equivalent(to: $0) }
                ) { try UnaryKernel(context: $0, op: op) })
        }
        // onnxruntime's contrib Gelu (exact form, no attributes): what its transformer optimizer
        // writes, and what `fuseErfGelu` makes of the Erf form below opset 20.
        r.add(
            OperatorRecord(
                "Gelu", domain: "com.microsoft", domainOpsets: 1...1, types: UnaryKernel.types(.gelu), shape: .fromInputShapes,
                rows: .rowwise, fusion: .activation, epilogue: { Epilogue.equivalent(to: $0) }
            ) { try UnaryKernel(context: $0, op: .gelu) })
        r.add(
            OperatorRecord(
                "Clip", types: real, shape: .fromInputShapes, rows: .rowwise, fusion: .activation,
                epilogue: { Epilogue.equivalent(to: $0) }
            ) { try ClipKernel(context: $0) })
        r.add(OperatorRecord("IsNaN", types: [.float32, .float64], shape: .fromInputShapes, rows: .rowwise) {
            try PredicateKernel(context: $0, op: .isNaN)
        })
        r.add(OperatorRecord("IsInf", types: [.float32, .float64], shape: .fromInputShapes, rows: .rowwise) {
            try PredicateKernel(context: $0, op: .isInf)
        })
        r.add(OperatorRecord("Not", types: [.bool], shape: .fromInputShapes, rows: .rowwise) {
            try PredicateKernel(context: $0, op: .not)
        })
        r.add(OperatorRecord("Cast", types: CastKernel.supported.sorted { $0.rawValue < $1.rawValue }, shape: .fromInputShapes, rows: .rowwise) {
            try CastKernel(context: $0)
        })
        r.add(OperatorRecord("CastLike", types: CastKernel.supported.sorted { $0.rawValue < $1.rawValue }, shape: .fromInputShapes, rows: .mixes) {
            try CastLikeKernel(context: $0)
        })

        // Reductions over axes, and the softmax family.
        for op in [ReduceKernel.Op.sum, .prod, .max, .min, .mean, .sumSquare, .l1, .l2, .logSum, .logSumExp] {
            r.add(OperatorRecord(op.rawValue, types: ReduceKernel.types(op), shape: .fromFirstShapeAndValues, rows: .reduce) {
                try ReduceKernel(context: $0, op: op)
            })
        }
        for op in [SoftmaxKernel.Op.softmax, .logSoftmax, .hardmax] {
            r.add(OperatorRecord(op.rawValue, types: [.float32, .float64], shape: .fromInputShapes, rows: .axisNotZero) {
                try SoftmaxKernel(context: $0, op: op)
            })
        }
        r.add(OperatorRecord("ArgMax", types: real, shape: .fromInputShapes, rows: .mixes) {
            try ArgMaxKernel(context: $0)
        })
        r.add(OperatorRecord("ArgMin", types: real, shape: .fromInputShapes, rows: .mixes) {
            try ArgMaxKernel(context: $0, isMin: true)
        })
        r.add(OperatorRecord("Einsum", types: [.float32, .float64], shape: .fromInputShapes, rows: .mixes) { try EinsumKernel(context: $0) })

        // Layout and shapes: byte copies, so any element type.
        r.add(OperatorRecord("Flatten", types: any, shape: .fromInputShapes, rows: .reshaping) { try FlattenKernel(context: $0) })
        r.add(OperatorRecord("Reshape", types: any, shape: .fromFirstShapeAndValues, rows: .reshaping) {
            try ReshapeKernel(context: $0)
        })
        r.add(OperatorRecord("Squeeze", types: any, shape: .fromFirstShapeAndValues, rows: .reshaping) {
            try SqueezeKernel(context: $0)
        })
        r.add(OperatorRecord("Unsqueeze", types: any, shape: .fromFirstShapeAndValues, rows: .reshaping) {
            try UnsqueezeKernel(context: $0)
        })
        r.add(OperatorRecord("Transpose", types: any, shape: .fromInputShapes, rows: .transpose) {
            try TransposeKernel(context: $0)
        })
        r.add(OperatorRecord("Concat", types: any, shape: .fromInputShapes, rows: .concat) { try ConcatKernel(context: $0) })
        r.add(OperatorRecord("Split", types: any, shape: .fromFirstShapeAndValues, rows: .mixes) { try SplitKernel(context: $0) })
        r.add(OperatorRecord("Slice", types: any, shape: .fromFirstShapeAndValues, rows: .mixes) { try SliceKernel(context: $0) })
        r.add(OperatorRecord("Expand", types: any, shape: .fromFirstShapeAndValues, rows: .mixes) { try ExpandKernel(context: $0) })
        r.add(OperatorRecord("Tile", types: any, shape: .fromFirstShapeAndValues, rows: .mixes) { try TileKernel(context: $0) })
        r.add(OperatorRecord("Pad", types: real + [.bool], shape: .fromFirstShapeAndValues, rows: .mixes) {
            try PadKernel(context: $0)
        })
        r.add(OperatorRecord("Gather", types: any, shape: .fromInputShapes, rows: .mixes) { try GatherKernel(context: $0) })
        r.add(OperatorRecord("GatherElements", types: any, shape: .fromInputShapes, rows: .mixes) {
            try GatherElementsKernel(context: $0)
        })
        r.add(OperatorRecord("GatherND", types: any, shape: .fromInputShapes, rows: .mixes) { try GatherNDKernel(context: $0) })
        r.add(OperatorRecord("Shape", types: any, shape: .fromInputShapes, rows: .mixes) { try ShapeKernel(context: $0) })
        r.add(OperatorRecord("Size", types: any, shape: .fromInputShapes, rows: .mixes) { try SizeKernel(context: $0) })
        r.add(OperatorRecord("Identity", types: any, shape: .fromInputShapes, rows: .rowwise, fusion: .passThrough) {
            try IdentityKernel(context: $0)
        })
        // Removed at inference; in training mode (opset 12+) it draws its mask at every run.
        r.add(OperatorRecord("Dropout", types: any, shape: .fromInputShapes, rows: .rowwise, fusion: .passThrough, random: true) {
            try DropoutKernel(context: $0)
        })

        // Selection, scans, triangles, one-hot, scatters, depth/space and resizing (detection,
        // segmentation and transformer exports).
        r.add(OperatorRecord("TopK", types: real, shape: .fromFirstShapeAndValues, rows: .mixes) { try TopKKernel(context: $0) })
        r.add(OperatorRecord("NonZero", types: any, shape: .fromValues, rows: .mixes) { try NonZeroKernel(context: $0) })
        r.add(OperatorRecord("CumSum", types: real, shape: .fromInputShapes, rows: .mixes) { try CumSumKernel(context: $0) })
        r.add(OperatorRecord("Trilu", types: any, shape: .fromInputShapes, rows: .mixes) { try TriluKernel(context: $0) })
        r.add(
            OperatorRecord(
                "OneHot", types: [.float32, .float64, .int64, .int32, .int16, .int8, .uint64, .uint32, .uint16, .uint8],
                shape: .fromFirstShapeAndValues, rows: .mixes
            ) { try OneHotKernel(context: $0) })
        r.add(OperatorRecord("EyeLike", types: any, shape: .fromInputShapes, rows: .mixes) { try EyeLikeKernel(context: $0) })
        r.add(OperatorRecord("ScatterND", types: any, shape: .fromInputShapes, rows: .mixes) { try ScatterNDKernel(context: $0) })
        r.add(OperatorRecord("ScatterElements", types: any, shape: .fromInputShapes, rows: .mixes) {
            try ScatterElementsKernel(context: $0)
        })
        r.add(OperatorRecord("DepthToSpace", types: any, shape: .fromInputShapes, rows: .rowwise) {
            try DepthSpaceKernel(context: $0, toSpace: true)
        })
        r.add(OperatorRecord("SpaceToDepth", types: any, shape: .fromInputShapes, rows: .rowwise) {
            try DepthSpaceKernel(context: $0, toSpace: false)
        })
        // Nearest for any element type; linear and cubic FP32 (the kernel refuses others).
        r.add(OperatorRecord("Resize", types: any, shape: .fromFirstShapeAndValues, rows: .mixes) { try ResizeKernel(context: $0) })
        r.add(OperatorRecord("Upsample", types: any, shape: .fromFirstShapeAndValues, rows: .mixes, firstOpset: 7) {
            try ResizeKernel(context: $0, upsample: true)
        })

        // Values made from other values.
        r.add(OperatorRecord("ConstantOfShape", types: [.int64], shape: .fromValues, rows: .mixes) {
            try ConstantOfShapeKernel(context: $0)
        })
        r.add(OperatorRecord("Range", types: RangeKernel.types, shape: .fromValues, rows: .mixes) { try RangeKernel(context: $0) })
        r.add(OperatorRecord("Constant", types: any, shape: .fromValues, rows: .mixes) { try ConstantKernel(context: $0) })

        // Pooling and normalisation.
        r.add(OperatorRecord("MaxPool", types: PoolKernel.maxTypes, shape: .fromInputShapes, rows: .rowwise) {
            try PoolKernel(context: $0, isMax: true)
        })
        r.add(OperatorRecord("AveragePool", types: [.float32, .float64], shape: .fromInputShapes, rows: .rowwise) {
            try PoolKernel(context: $0, isMax: false)
        })
        r.add(OperatorRecord("GlobalAveragePool", types: [.float32, .float64], shape: .fromInputShapes, rows: .rowwise) {
            try GlobalPoolKernel(context: $0, isMax: false)
        })
        r.add(OperatorRecord("GlobalMaxPool", types: [.float32, .float64], shape: .fromInputShapes, rows: .rowwise) {
            try GlobalPoolKernel(context: $0, isMax: true)
        })
        r.add(
            OperatorRecord("BatchNormalization", types: [.float32, .float64], shape: .fromInputShapes, rows: .rowwise, fusion: .foldsIntoProducer) {
                try BatchNormalizationKernel(context: $0)
            })
        r.add(OperatorRecord("InstanceNormalization", types: [.float32, .float64], shape: .fromInputShapes, rows: .rowwise) {
            try InstanceNormalizationKernel(context: $0)
        })
        r.add(OperatorRecord("LayerNormalization", types: [.float32, .float64], shape: .fromInputShapes, rows: .axisNotZero) {
            try LayerNormalizationKernel(context: $0)
        })
        r.add(OperatorRecord("LRN", types: f32, shape: .fromInputShapes, rows: .rowwise) { try LRNKernel(context: $0) })

        // Control flow: subgraphs planned once at load (ControlFlow.swift), run per request.
        r.add(OperatorRecord("If", types: [.bool], shape: .fromValues, rows: .mixes) { try IfKernel(context: $0) })
        r.add(OperatorRecord("Loop", types: [.int64], shape: .fromValues, rows: .mixes) { try LoopKernel(context: $0) })
        r.add(OperatorRecord("Scan", types: any, shape: .fromValues, rows: .mixes) { try ScanKernel(context: $0) })

        // Losses (evaluation graphs that compute their own loss) and BitCast.
        r.add(OperatorRecord("NegativeLogLikelihoodLoss", types: f32, shape: .fromInputShapes, rows: .mixes) {
            try ClassLossKernel(context: $0, softmax: false)
        })
        r.add(OperatorRecord("SoftmaxCrossEntropyLoss", types: f32, shape: .fromInputShapes, rows: .mixes) {
            try ClassLossKernel(context: $0, softmax: true)
        })
        r.add(OperatorRecord("BitCast", types: any, shape: .fromInputShapes, rows: .rowwise) { try BitCastKernel(context: $0) })

        // Recurrent-state layers of newer language models (Gated DeltaNet, Mamba): opset 27.
        r.add(OperatorRecord("CausalConvWithState", types: f32, shape: .fromInputShapes, rows: .rowwise) {
            try CausalConvWithStateKernel(context: $0)
        })
        r.add(OperatorRecord("LinearAttention", types: f32, shape: .fromInputShapes, rows: .rowwise) {
            try LinearAttentionKernel(context: $0)
        })

        // Sequences and optionals (ValueContainer): built and taken apart inside graphs, Loop bodies above all.
        r.add(OperatorRecord("SequenceEmpty", types: any, shape: .fromValues, rows: .mixes) { try SequenceEmptyKernel(context: $0) })
        r.add(OperatorRecord("SequenceConstruct", types: any, shape: .fromValues, rows: .mixes) {
            try SequenceConstructKernel(context: $0)
        })
        r.add(OperatorRecord("SequenceInsert", types: any, shape: .fromValues, rows: .mixes) { try SequenceInsertKernel(context: $0) })
        r.add(OperatorRecord("SequenceErase", types: any, shape: .fromValues, rows: .mixes) { try SequenceEraseKernel(context: $0) })
        r.add(OperatorRecord("SequenceAt", types: any, shape: .fromValues, rows: .mixes) { try SequenceAtKernel(context: $0) })
        r.add(OperatorRecord("SequenceLength", types: any, shape: .fromValues, rows: .mixes) { try SequenceLengthKernel(context: $0) })
        r.add(OperatorRecord("SplitToSequence", types: any, shape: .fromValues, rows: .mixes) {
            try SplitToSequenceKernel(context: $0)
        })
        r.add(OperatorRecord("ConcatFromSequence", types: any, shape: .fromValues, rows: .mixes) {
            try ConcatFromSequenceKernel(context: $0)
        })
        r.add(OperatorRecord("SequenceMap", types: any, shape: .fromValues, rows: .mixes) { try SequenceMapKernel(context: $0) })
        r.add(OperatorRecord("Optional", types: any, shape: .fromValues, rows: .mixes) { try OptionalKernel(context: $0) })
        r.add(OperatorRecord("OptionalHasElement", types: any, shape: .fromValues, rows: .mixes) {
            try OptionalHasElementKernel(context: $0)
        })
        r.add(OperatorRecord("OptionalGetElement", types: any, shape: .fromValues, rows: .mixes) {
            try OptionalGetElementKernel(context: $0)
        })

        // Recurrent layers (LSTM, GRU, RNN): opset 7 on (opset 1's output_sequence is not supported).
        // Batch rows: layout 1 puts the batch on axis 0 and layout 0 on axis 1, so they count as mixed.
        for cell in [RecurrentKernel.Cell.lstm, .gru, .rnn] {
            r.add(OperatorRecord(cell.rawValue, types: f32, shape: .fromInputShapes, rows: .mixes, firstOpset: 7) {
                try RecurrentKernel(context: $0, cell: cell)
            })
        }

        // Families with their own record files (one file each, so parallel work does not collide).
        registerVisionOperators(&r)
        registerDetectionOperators(&r)
        registerNewerOperators(&r)
        registerRandomOperators(&r)
        registerRemainingOperators(&r)
        registerQuantizedOperators(&r)
        return r
    }
}
