import Synchronization

/// Time per step, summed over the runs it is passed to (`InferenceSession.run(_:profile:)`): for
/// `swerve bench --profile`, to see where a model's time goes. Runs that build a shape plan are
/// not timed; slices of a batch (`BatchSplit`) add to the same steps. Locked; any thread may add.
public final class StepProfile: Sendable {
    /// One step: node name, operator, total time, times it ran.
    public struct Entry: Sendable {
        public let node: String
        public let opType: String
        public var seconds: Double
        public var count: Int
    }

    private let state = Mutex<(entries: [Entry], index: [String: Int])>(([], [:]))

    public init() {}

    func add(_ step: Plan.Step, _ elapsed: Duration) {
        let (s, atto) = elapsed.components
        let seconds = Double(s) + Double(atto) / 1e18
        state.withLock { st in
            if let i = st.index[step.node] {
                st.entries[i].seconds += seconds
                st.entries[i].count += 1
            } else {
                st.index[step.node] = st.entries.count
                st.entries.append(Entry(node: step.node, opType: step.opType, seconds: seconds, count: 1))
            }
        }
    }

    /// The steps in the order they first ran.
    public var entries: [Entry] { state.withLock { $0.entries } }
}
