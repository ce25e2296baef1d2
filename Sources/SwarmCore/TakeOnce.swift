import Synchronization

/// A value that exactly one caller gets: the first `take()` returns it, every later one nil (a first chunk read
/// ahead, handed to whichever of two closures runs first). Synchronous and never suspends, so it has no
/// cancellation behaviour.
public final class TakeOnce<Value: Sendable>: Sendable {
    private let value: Mutex<Value?>

    public init(_ value: Value?) { self.value = Mutex(value) }

    public func take() -> Value? {
        value.withLock { value in
            defer { value = nil }
            return value
        }
    }
}
