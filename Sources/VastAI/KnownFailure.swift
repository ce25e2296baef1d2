import Foundation

/// A failure vastai.md §2.2 lists, recognized from an instance's `status_msg` or log lines, with what to change.
public struct KnownFailure: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// The image needs a newer CUDA than the host's driver (`unsatisfied condition: cuda>=…`).
        case cudaTooNew
        /// The host's disk filled while pulling or running.
        case diskFull
        /// The image could not be pulled: wrong name or tag, no access.
        case imageNotPullable
        /// The pull broke off (`unexpected EOF`): the host's link, not the image.
        case pullInterrupted
        /// The container runtime refused to start the container for another reason.
        case containerNotCreated
        /// The app runs but PyTorch has no kernels for this GPU (`no kernel image is available`).
        case noKernelImage
    }

    public var kind: Kind
    /// The line that matched, trimmed.
    public var evidence: String

    /// Whether another machine can be expected to work. When not, replacing only rents the same failure again.
    public var anotherMachineMayHelp: Bool {
        switch kind {
        case .cudaTooNew, .diskFull, .pullInterrupted, .containerNotCreated: true
        case .imageNotPullable, .noKernelImage: false
        }
    }

    /// What the operator should change.
    public var advice: String {
        switch kind {
        case .cudaTooNew:
            "the host's NVIDIA driver is older than the image's CUDA; keep the cuda_max_good filter (--min-cuda) at least at the image's CUDA version"
        case .diskFull:
            "the host's disk filled up; give instances more disk (--disk, SWARM_FLEET_DISK_GB)"
        case .imageNotPullable:
            "the image cannot be pulled; check SWARM_FLEET_IMAGE (name and tag) or the template, and the registry credentials"
        case .pullInterrupted:
            "the image download broke off on this host; another host, or a higher --min-inet-down, should help"
        case .containerNotCreated:
            "the container runtime on this host refused to start the container; another host should help"
        case .noKernelImage:
            "the image's PyTorch has no kernels for this GPU (RTX 50xx needs CUDA 12.8+ and PyTorch 2.7+); use a cu128 image or rent another GPU model (--gpu)"
        }
    }

    public var description: String { "\(kind.rawValue): \(advice) (saw: \(evidence))" }

    /// Substrings in the order they are tried: specific causes before the generic daemon errors that wrap them.
    /// The pull and daemon patterns are read only in `status_msg`: in an app's log, "not found" means anything.
    private static let statusPatterns: [(Kind, [String])] =
        logPatterns + [
            (.imageNotPullable, ["manifest unknown", "pull access denied", "unauthorized", "failed to pull image", "not found"]),
            (.pullInterrupted, ["unexpected eof"]),
            (.containerNotCreated, ["oci runtime create failed", "error response from daemon"]),
        ]
    private static let logPatterns: [(Kind, [String])] = [
        (.cudaTooNew, ["unsatisfied condition: cuda>=", "please update your driver"]),
        (.diskFull, ["no space left on device"]),
        (.noKernelImage, ["no kernel image is available", "is not compatible with the current pytorch installation"]),
    ]

    /// The known failure in `status_msg`, or else the newest one in the log lines.
    public static func recognize(statusMessage: String?, logLines: [String] = []) -> KnownFailure? {
        if let statusMessage, let failure = match(statusMessage, statusPatterns) { return failure }
        for line in logLines.reversed() {
            if let failure = match(line, logPatterns) { return failure }
        }
        return nil
    }

    private static func match(_ text: String, _ patterns: [(Kind, [String])]) -> KnownFailure? {
        let lowered = text.lowercased()
        guard let kind = patterns.first(where: { $0.1.contains(where: lowered.contains) })?.0 else { return nil }
        return KnownFailure(kind: kind, evidence: String(text.trimmingCharacters(in: .whitespacesAndNewlines).prefix(300)))
    }
}
