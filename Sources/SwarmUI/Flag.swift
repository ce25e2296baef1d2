import Synchronization

/// A one-way boolean shared with a `@Sendable` closure (set inside a WebSocket handler, read after it).
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)

    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
