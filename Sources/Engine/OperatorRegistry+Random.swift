import Tensors

extension OperatorRegistry {
    /// The random generators and Dropout: their records say `random`, so a node whose inputs are all
    /// constants still runs every time (a folded value would repeat one draw forever).
    static func registerRandomOperators(_ r: inout OperatorRegistry) {
        let f32: [DataType] = [.float32]
        // Shape and type from attributes; no input carries a batch.
        r.add(OperatorRecord("RandomUniform", types: f32, shape: .fromInputShapes, rows: .mixes, random: true) {
            try RandomKernel(context: $0, distribution: .uniform, like: false)
        })
        r.add(OperatorRecord("RandomNormal", types: f32, shape: .fromInputShapes, rows: .mixes, random: true) {
            try RandomKernel(context: $0, distribution: .normal, like: false)
        })
        // One draw per element of the input: a batch's rows are independent draws either way.
        let like = RandomDraw.outputTypes
        r.add(OperatorRecord("RandomUniformLike", types: like, shape: .fromInputShapes, rows: .rowwise, random: true) {
            try RandomKernel(context: $0, distribution: .uniform, like: true)
        })
        r.add(OperatorRecord("RandomNormalLike", types: like, shape: .fromInputShapes, rows: .rowwise, random: true) {
            try RandomKernel(context: $0, distribution: .normal, like: true)
        })
        r.add(OperatorRecord("Bernoulli", types: [.float32, .float64], shape: .fromInputShapes, rows: .rowwise, random: true) {
            try BernoulliKernel(context: $0)
        })
        r.add(OperatorRecord("Multinomial", types: f32, shape: .fromInputShapes, rows: .rowwise, random: true) {
            try MultinomialKernel(context: $0)
        })
    }
}
