import SwarmCore
import Synchronization

import Foundation

/// Where the downloads stand, as the progress callback receives it.
public struct ModelDownloadProgress: Sendable, Equatable {
    public enum FileState: String, Sendable {
        case waiting
        /// Hashing a partial file before resuming it, or the finished file.
        case verifying
        case downloading
        case done
        case failed
    }

    public struct File: Sendable, Equatable {
        public var name: String
        /// Bytes on disk, including those from an earlier run.
        public var done: Int64
        /// The server's size once it answered, the manifest's estimate before.
        public var total: Int64
        public var state: FileState
        /// Over the interval since the previous report.
        public var bytesPerSecond: Double

        public var percent: Double { total > 0 ? min(100, Double(done) * 100 / Double(total)) : 0 }

        /// `name 43.1% (4.1 GiB of 9.6 GiB) 85.3 MB/s`, for log and terminal lines.
        public var summary: String {
            let rate = state == .downloading ? String(format: " %.1f MB/s", bytesPerSecond / 1_000_000) : ""
            let stateNote = state == .downloading ? "" : " \(state.rawValue)"
            return "\(name) \(String(format: "%.1f", percent))% (\(formatBytes(done)) of \(formatBytes(total)))\(rate)\(stateNote)"
        }
    }

    public var files: [File]

    public var done: Int64 { files.reduce(0) { $0 + $1.done } }
    public var total: Int64 { files.reduce(0) { $0 + $1.total } }
    public var percent: Double { total > 0 ? min(100, Double(done) * 100 / Double(total)) : 100 }
}

/// Shared by the concurrent downloads, read by the reporter; a lock rather than an actor because every received
/// chunk updates it and a hop per chunk would cost more than the update.
final class DownloadProgressTracker: Sendable {
    private struct State {
        var files: [ModelDownloadProgress.File]
        var lastDone: [Int64]
        var lastSnapshot: ContinuousClock.Instant
    }

    private let state: Mutex<State>

    init(files: [(name: String, done: Int64, total: Int64)]) {
        state = Mutex(
            State(
                files: files.map { .init(name: $0.name, done: $0.done, total: max($0.total, $0.done), state: .waiting, bytesPerSecond: 0) },
                lastDone: files.map(\.done),
                lastSnapshot: .now
            )
        )
    }

    func update(_ index: Int, state newState: ModelDownloadProgress.FileState? = nil, done: Int64? = nil, total: Int64? = nil) {
        state.withLock { state in
            if let newState { state.files[index].state = newState }
            if let done { state.files[index].done = done }
            if let total { state.files[index].total = total }
            // An estimate never reads below what is already on disk.
            state.files[index].total = max(state.files[index].total, state.files[index].done)
        }
    }

    /// Raises a file's bytes done, never lowering them: the connections of one file report out of order.
    func raise(_ index: Int, done: Int64) {
        state.withLock { state in
            state.files[index].done = max(state.files[index].done, done)
            state.files[index].total = max(state.files[index].total, state.files[index].done)
        }
    }

    func done(_ index: Int) -> Int64 { state.withLock { $0.files[index].done } }

    /// The current state, with each file's rate since the previous snapshot.
    func snapshot() -> ModelDownloadProgress {
        state.withLock { state in
            let now = ContinuousClock.now
            let elapsed = (now - state.lastSnapshot).seconds
            for index in state.files.indices {
                let delta = state.files[index].done - state.lastDone[index]
                state.files[index].bytesPerSecond = elapsed > 0 ? max(0, Double(delta) / elapsed) : 0
                state.lastDone[index] = state.files[index].done
            }
            state.lastSnapshot = now
            return ModelDownloadProgress(files: state.files)
        }
    }
}
