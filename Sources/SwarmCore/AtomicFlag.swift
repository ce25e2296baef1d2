import Synchronization

/// A one-way boolean shared with a `@Sendable` closure (set inside a WebSocket handler, read after it); named apart
/// from ArgumentParser's `@Flag`. Nothing waits on it (use `Latch` to wait), so it has no cancellation behaviour:
/// setting and reading never suspend.
public final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)

    public init() {}

    public func set() { value.store(true, ordering: .releasing) }
    public var isSet: Bool { value.load(ordering: .acquiring) }
}
