import Foundation
import SwarmCore
import Synchronization

/// Queued `auto` jobs that would spill over to fal.ai but wait for the fleet because today's budget is spent, with
/// why: their status says so in `spillOver` (absent otherwise) until they leave the queue. Every replica runs the
/// spill-over rounds, so each one knows this of every queued job.
final class SpillWaits: Sendable {
    private let waiting = Mutex<[String: (endpoint: String, reason: String)]>([:])

    /// Records why `id` waits; true the first time, so that the log says it once per job.
    func record(id: String, endpoint: String, reason: String) -> Bool {
        waiting.withLock { $0.updateValue((endpoint, reason), forKey: id) == nil }
    }

    /// Forgets the endpoint's jobs that a round did not find waiting for lack of budget any more.
    func keep(only ids: Set<String>, endpoint: String) {
        waiting.withLock { waiting in
            waiting = waiting.filter { $0.value.endpoint != endpoint || ids.contains($0.key) }
        }
    }

    func reason(id: String) -> String? { waiting.withLock { $0[id]?.reason } }

    /// A queued job's status or runsync answer with `spillOver` when the job waits for lack of budget.
    func annotate(_ status: JSONValue, id: String) -> JSONValue {
        guard let reason = reason(id: id), case .object(var fields) = status else { return status }
        fields["spillOver"] = .string(reason)
        return .object(fields)
    }
}
