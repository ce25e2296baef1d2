import Logging

import Foundation

/// Outputs of a job whose upload failed for good. SwarmUI's files stay where it saved them on the volume; a record
/// of their references, `<directory>/<job id>.json`, lets a retry of the job on this worker upload them instead of
/// generating again (minutes of GPU time for a video). The record goes once the outputs are stored.
struct KeptOutputs: Sendable {
    let directory: String

    private struct Record: Codable {
        struct Output: Codable {
            var reference: String
            var batchIndex: Int
            var metadata: String?
        }

        var jobID: String
        var outputs: [Output]
    }

    func path(jobID: String) -> String {
        directory + "/" + Self.fileName(jobID) + ".json"
    }

    /// The outputs kept for `jobID`, if an earlier attempt left any.
    func load(jobID: String) -> [GeneratedOutput]? {
        guard let data = FileManager.default.contents(atPath: path(jobID: jobID)),
            let record = try? JSONDecoder().decode(Record.self, from: data), record.jobID == jobID, !record.outputs.isEmpty
        else { return nil }
        return record.outputs.map { GeneratedOutput(reference: $0.reference, batchIndex: $0.batchIndex, metadata: $0.metadata) }
    }

    /// Records `outputs` for a retry; false when they cannot be kept (a data URL lives only in SwarmUI's reply) or
    /// the volume refuses the write.
    @discardableResult
    func save(jobID: String, outputs: [GeneratedOutput], logger: Logger) -> Bool {
        guard !outputs.isEmpty, !outputs.contains(where: { $0.reference.hasPrefix("data:") }) else { return false }
        let record = Record(jobID: jobID, outputs: outputs.map { .init(reference: $0.reference, batchIndex: $0.batchIndex, metadata: $0.metadata) })
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: path(jobID: jobID)), options: .atomic)
            return true
        } catch {
            logger.warning("cannot record the kept outputs of \(jobID) in \(directory): \(error)")
            return false
        }
    }

    func remove(jobID: String) {
        try? FileManager.default.removeItem(atPath: path(jobID: jobID))
    }

    /// Where SwarmUI keeps a `View/<user>/<path>` output: `Output/<user>/<path>` in its folder on the volume.
    static func location(of reference: String) -> String {
        reference.hasPrefix("View/") ? "Output/" + reference.dropFirst("View/".count) : reference
    }

    /// A job id as a file name: ids are the queue's, so anything but letters, digits, `-` and `_` is replaced.
    private static func fileName(_ jobID: String) -> String {
        String(jobID.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(200))
    }
}
