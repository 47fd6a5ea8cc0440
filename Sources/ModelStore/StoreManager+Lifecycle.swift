import Logging

/// The one writer of version states. Every change of a version's `VersionState` in the registry
/// goes through `transition`, which checks it against the diagram (docs/model-store.md, "Version
/// lifecycle"):
///
///     (new) --> START | LOADING | UNLOADED
///     START --> START (new reason) | LOADING | UNLOADED
///     UNLOADED --> UNLOADED (new reason) | LOADING | START
///     LOADING --> AVAILABLE | FAILED
///     AVAILABLE --> UNLOADING
///     UNLOADING --> END | LOADING (asked for again while its requests finish: a new copy loads;
///                                  the draining one ends when its last request is done)
///     END --> START | LOADING | UNLOADED
///     FAILED --> START | LOADING
///     START, END, FAILED, UNLOADED --> (forgotten)
///
/// Runs on the manager's queue only (`GracefulShutdown` goes through `StoreManager.stop`).
extension StoreManager {
    /// The legal next states of each state (`nil` = no entry in the registry).
    static let legalTransitions: [VersionState?: Set<VersionState?>] = [
        nil: [.start, .loading, .unloaded],
        .start: [.start, .loading, .unloaded, nil],
        .loading: [.available, .failed],
        .available: [.unloading],
        .unloading: [.end, .loading, nil],
        .end: [.start, .loading, .unloaded, nil],
        .failed: [.start, .loading, nil],
        .unloaded: [.unloaded, .loading, .start, nil],
    ]

    /// Whether `from -> to` is in the diagram.
    static func isLegal(from: VersionState?, to: VersionState?) -> Bool {
        legalTransitions[from]?.contains(to) ?? false
    }

    /// Moves one version to `state` (nil = forget its entry) if the diagram allows it; an illegal
    /// change is refused and logged (`event=illegal_transition`: a bug to report). Returns whether
    /// it happened.
    @discardableResult
    func transition(
        _ model: String, _ version: Int, to state: VersionState?, error: String? = nil,
        servable: ServableVersion? = nil
    ) -> Bool {
        if state == nil, registry.snapshot().models[model]?.versions[version] == nil { return true }  // nothing to forget
        var from: VersionState?
        var legal = false
        registry.update(model) { status in
            from = status?.versions[version]?.state
            legal = StoreManager.isLegal(from: from, to: state)
            guard legal else { return }
            if let state {
                status?.versions[version] = VersionStatus(version: version, state: state, error: error, servable: servable)
            } else {
                status?.versions[version] = nil
            }
        }
        if !legal {
            logger.error(
                "refused an illegal version state change; please report this as a bug",
                metadata: [
                    "event": "illegal_transition", "model": "\(model)", "version": "\(version)",
                    "from": "\(from?.rawValue ?? "none")", "to": "\(state?.rawValue ?? "none")",
                ])
        }
        return legal
    }
}
