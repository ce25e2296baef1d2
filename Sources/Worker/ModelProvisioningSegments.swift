import SwarmCore
import Synchronization

import Foundation

/// How one file is cut into byte ranges and how far each has come: what `<file>.partial.segments` holds on the
/// volume, so every range resumes on its own after a cut or a restart. Pure; `SegmentBoard` shares it at run time.
struct SegmentPlan: Codable, Sendable, Equatable {
    struct Segment: Codable, Sendable, Equatable {
        var start: Int64
        /// Exclusive.
        var end: Int64
        /// Bytes written from `start` on; a range is always filled from its start, so `[start, start + done)` is valid.
        var done: Int64

        var next: Int64 { start + done }
        var isComplete: Bool { next >= end }
    }

    static let schema = 1
    var schema = Self.schema
    /// The manifest URL the plan was made for: another URL means another file.
    var url: String
    var total: Int64
    var segments: [Segment]

    /// About `perConnection` ranges per connection, each between `minimum` and `maximum` bytes: several per connection so
    /// ranges are handed out in file order and the hashed prefix grows during the download instead of after it, and a
    /// slow connection holds back at most one range at the end. `prefix` bytes already on disk (a single-stream
    /// partial from an earlier run) count as done.
    init(url: String, total: Int64, prefix: Int64, connections: Int, minimum: Int64, maximum: Int64, perConnection: Int64 = 4) {
        let target = total / (Int64(max(1, connections)) * perConnection)
        let size = max(1, min(maximum, max(minimum, target)))
        var segments: [Segment] = []
        var start: Int64 = 0
        while start < total {
            let end = min(total, start + size)
            segments.append(Segment(start: start, end: end, done: max(0, min(end, prefix) - start)))
            start = end
        }
        self.url = url
        self.total = total
        self.segments = segments
    }

    var done: Int64 { segments.reduce(0) { $0 + $1.done } }
    var isComplete: Bool { segments.allSatisfy(\.isComplete) }
    var remainingSegments: Int { segments.count { !$0.isComplete } }

    /// Bytes from 0 on that are all on disk: what can be hashed so far.
    var contiguousPrefix: Int64 {
        var prefix: Int64 = 0
        for segment in segments {
            prefix = segment.next
            if !segment.isComplete { break }
        }
        return prefix
    }

    /// A plan read back is used only when it describes a whole file consistently; anything else is discarded.
    var isConsistent: Bool {
        schema == Self.schema && total > 0 && segments.first?.start == 0 && segments.last?.end == total
            && zip(segments, segments.dropFirst()).allSatisfy { $0.end == $1.start }
            && segments.allSatisfy { $0.start < $0.end && $0.done >= 0 && $0.done <= $0.end - $0.start }
    }
}

/// The plan shared by one file's connections: each claims the first unclaimed incomplete range (file order), writes
/// it, and advances it; a lock because every received buffer advances it.
final class SegmentBoard: Sendable {
    private struct State {
        var plan: SegmentPlan
        var claimed: Set<Int> = []
        /// Set when the server's answers show the partial file cannot be continued (another size, Range ignored).
        var invalid: String?
        /// Where the manifest URL last redirected to, asked directly by the ranges until it is refused.
        var source: String?
    }

    private let state: Mutex<State>

    init(_ plan: SegmentPlan, source: String? = nil) { state = Mutex(State(plan: plan, source: source)) }

    var source: String? { state.withLock { $0.source } }
    func remember(_ source: String) { state.withLock { if $0.source == nil { $0.source = source } } }
    /// Forgets `source` unless another connection already replaced it.
    func forget(_ source: String) { state.withLock { if $0.source == source { $0.source = nil } } }

    var plan: SegmentPlan { state.withLock { $0.plan } }
    var done: Int64 { state.withLock { $0.plan.done } }
    var contiguousPrefix: Int64 { state.withLock { $0.plan.contiguousPrefix } }
    var invalid: String? { state.withLock { $0.invalid } }

    func claim() -> (index: Int, segment: SegmentPlan.Segment)? {
        state.withLock { state in
            guard state.invalid == nil,
                let index = state.plan.segments.indices.first(where: { !state.plan.segments[$0].isComplete && !state.claimed.contains($0) })
            else { return nil }
            state.claimed.insert(index)
            return (index, state.plan.segments[index])
        }
    }

    func release(_ index: Int) { _ = state.withLock { $0.claimed.remove(index) } }

    /// Records `count` more bytes of range `index`; returns the file's bytes done.
    func advance(_ index: Int, by count: Int64) -> Int64 {
        state.withLock { state in
            state.plan.segments[index].done += count
            return state.plan.done
        }
    }

    func invalidate(_ reason: String) { state.withLock { if $0.invalid == nil { $0.invalid = reason } } }
}

/// The cap on connections open at once across every file downloading: each range request holds a slot.
final class ConnectionSlots: Sendable {
    private struct State {
        var free: Int
        var waiting: [(id: UUID, continuation: CheckedContinuation<Void, any Error>)] = []
    }

    private let state: Mutex<State>

    init(_ count: Int) { state = Mutex(State(free: max(1, count))) }

    func acquire() async throws {
        let id = UUID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resume: Result<Void, any Error>? = state.withLock { state in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if state.free > 0 {
                        state.free -= 1
                        return .success(())
                    }
                    state.waiting.append((id, continuation))
                    return nil
                }
                if let resume { continuation.resume(with: resume) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                guard let position = state.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiting.remove(at: position).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            if state.waiting.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst().continuation
        }
        next?.resume()
    }
}
