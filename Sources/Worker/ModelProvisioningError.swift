import SwarmCore

/// Why models could not be put in place, worded for the operator reading the log: what happened and what to do.
public indirect enum ModelProvisioningError: Error, Sendable, CustomStringConvertible {
    case manifestInvalid(source: String, problems: [String])
    /// Models that need a token whose variable is unset: (model, variable).
    case tokensMissing([MissingToken])
    case notEnoughDisk(path: String, needed: Int64, free: Int64, models: Int)
    /// The server answered with a status retrying will not change (401, 403, 404, ...).
    case refused(model: String, status: Int, host: String, hint: String)
    case checksumMismatch(model: String, expected: String, actual: String)
    /// A network failure, a cut connection or a server error; retried with backoff.
    case transfer(model: String, detail: String)
    case fileSystem(model: String, detail: String)
    case gaveUp(model: String, attempts: Int, last: ModelProvisioningError)
    case several([ModelProvisioningError])
    /// A GGUF diffusion model ComfyUI-GGUF would refuse to load (wrong or unknown `general.architecture`, not GGUF).
    case unloadableGGUF(model: String, path: String, reason: String)
    /// Presets name models that are neither in the manifest nor under `Models/`.
    case presetModelsMissing(models: [String], modelsRoot: String)
    case cancelled

    public struct MissingToken: Sendable, Hashable {
        public var model: String
        public var variable: String
    }

    /// Worth another attempt: the connection, the server's mood, or a corrupted transfer.
    var isRetryable: Bool {
        switch self {
        case .transfer, .checksumMismatch: true
        default: false
        }
    }

    var isCancellation: Bool {
        if case .cancelled = self { true } else { false }
    }

    public var description: String {
        switch self {
        case .manifestInvalid(let source, let problems):
            "the models manifest \(source) is invalid:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
        case .tokensMissing(let missing):
            "models need download tokens that are not set: "
                + missing.map { "'\($0.model)' needs \($0.variable)" }.joined(separator: "; ")
                + " (set the variable in the instance's environment and restart)"
        case .notEnoughDisk(let path, let needed, let free, let models):
            "not enough free disk for \(models) model(s) under \(path): need \(formatBytes(needed)) (including a safety margin), "
                + "\(formatBytes(free)) free; grow the volume or delete files on it"
        case .refused(let model, let status, let host, let hint):
            "downloading '\(model)': \(host) answered HTTP \(status); \(hint)"
        case .checksumMismatch(let model, let expected, let actual):
            "downloading '\(model)': sha256 is \(actual), models.json expects \(expected); the download was discarded"
        case .transfer(let model, let detail):
            "downloading '\(model)': \(detail)"
        case .fileSystem(let model, let detail):
            "writing '\(model)': \(detail)"
        case .gaveUp(_, let attempts, let last):
            "\(last) (gave up after \(attempts) attempts; the next run resumes from what is on disk)"
        case .several(let errors):
            "\(errors.count) models failed:\n" + errors.map { "  - \($0)" }.joined(separator: "\n")
        case .unloadableGGUF(let model, let path, let reason):
            "'\(model)' (\(path)) cannot be loaded by ComfyUI-GGUF: \(reason); every job using it would fail. "
                + "Point its url in models.json at a GGUF of the right model, delete the file and restart"
        case .presetModelsMissing(let models, let modelsRoot):
            "presets need models that are neither in the models manifest nor under \(modelsRoot): \(models.joined(separator: ", ")) "
                + "(add them to models.json or place the files there)"
        case .cancelled:
            "model downloads were cancelled; the next run resumes from what is on disk"
        }
    }
}
