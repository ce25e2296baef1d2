#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import SwarmCore

import Foundation

/// Puts SwarmUI on the volume on first boot by copying the image's prebuilt seed (seconds, instead of SwarmUI's
/// 20-minute install). `launch-linux.sh` marks a complete install: it is the last thing to appear, so a boot that
/// dies mid-copy leaves no install that looks whole, and the next boot simply copies again.
public struct SwarmUISeed: Sendable {
    public var seedPath: String
    public var installPath: String

    /// Top-level folders holding the user's data: kept when already on the volume, only filled in from the seed.
    static let persistentFolders: Set<String> = ["Models", "Output", "Data"]
    static let marker = "launch-linux.sh"

    public init(seedPath: String, installPath: String) {
        self.seedPath = seedPath
        self.installPath = installPath
    }

    public enum Outcome: Sendable, Equatable {
        case alreadyInstalled
        case copied(files: Int, bytes: Int64)
    }

    /// Counts so far, for progress lines.
    public struct Progress: Sendable, Equatable {
        public var files = 0
        public var bytes: Int64 = 0
    }

    public var isInstalled: Bool { FileSystem.linkInfo(installPath + "/" + Self.marker) != nil }

    /// Copies the seed unless SwarmUI is already installed. `progress` runs after every file; throwing from it
    /// abandons the copy, which then leaves nothing behind, exactly like a failure.
    public func ensureInstalled(
        logger: Logger,
        progress: (Progress) throws -> Void = { _ in }
    ) throws(SwarmUISeedError) -> Outcome {
        if isInstalled { return .alreadyInstalled }
        guard let seedInfo = FileSystem.info(seedPath), FileSystem.isDirectory(seedInfo),
            FileSystem.linkInfo(seedPath + "/" + Self.marker) != nil
        else {
            throw .noSeed(seed: seedPath, install: installPath)
        }
        let installURL = URL(fileURLWithPath: installPath)
        let parent = installURL.deletingLastPathComponent().path
        let stagingPrefix = "." + installURL.lastPathComponent + ".seeding-"
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            throw .copyFailed(detail: "cannot create \(parent): \(error.localizedDescription)")
        }
        // A boot that died mid-copy left its staging folder; it is garbage now.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where name.hasPrefix(stagingPrefix) {
            logger.info("removing an unfinished SwarmUI copy from an earlier boot", metadata: ["path": "\(parent)/\(name)"])
            try? FileManager.default.removeItem(atPath: parent + "/" + name)
        }

        // Same folder as the install, so the final rename stays on one file system and is atomic.
        let staging = parent + "/" + stagingPrefix + UUID().uuidString.prefix(8).lowercased()
        logger.info("copying SwarmUI from the image's seed to the volume", metadata: ["seed": "\(seedPath)", "install": "\(installPath)"])
        let started = ContinuousClock.now
        var counts = Progress()
        var lastLog = started
        do {
            try FileSystem.copyTree(from: seedPath, to: staging) { bytes in
                counts.files += 1
                counts.bytes += bytes
                try progress(counts)
                if ContinuousClock.now - lastLog >= .seconds(5) {
                    lastLog = .now
                    logger.info("copying SwarmUI seed", metadata: ["files": "\(counts.files)", "copied": "\(formatBytes(counts.bytes))"])
                }
            }
            try moveIntoPlace(staging: staging, logger: logger)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw .copyFailed(detail: "\(error)")
        }
        logger.info(
            "SwarmUI copied to the volume",
            metadata: [
                "files": "\(counts.files)", "copied": "\(formatBytes(counts.bytes))",
                "seconds": "\(String(format: "%.1f", (ContinuousClock.now - started).seconds))",
            ]
        )
        return .copied(files: counts.files, bytes: counts.bytes)
    }

    /// A fresh volume gets the staging folder renamed into place. A volume that already has some of SwarmUI's
    /// folders (models placed by hand, an earlier interrupted merge) keeps its data folders and gets everything
    /// else from the seed; the marker moves last.
    private func moveIntoPlace(staging: String, logger: Logger) throws {
        guard FileSystem.linkInfo(installPath) != nil else {
            try FileSystem.move(staging, installPath)
            return
        }
        logger.info("SwarmUI folder exists without \(Self.marker); adding the seed around its Models/, Output/ and Data/")
        let names = try FileManager.default.contentsOfDirectory(atPath: staging).filter { $0 != Self.marker }
        for name in names {
            let source = staging + "/" + name, target = installPath + "/" + name
            if Self.persistentFolders.contains(name) {
                try FileSystem.mergeMissing(from: source, into: target)
            } else {
                if FileSystem.linkInfo(target) != nil { try FileManager.default.removeItem(atPath: target) }
                try FileSystem.move(source, target)
            }
        }
        try FileSystem.move(staging + "/" + Self.marker, installPath + "/" + Self.marker)
        try FileManager.default.removeItem(atPath: staging)
    }
}

public enum SwarmUISeedError: Error, Sendable, CustomStringConvertible {
    case noSeed(seed: String, install: String)
    case copyFailed(detail: String)

    public var description: String {
        switch self {
        case .noSeed(let seed, let install):
            "SwarmUI is not installed at \(install) (no \(SwarmUISeed.marker)) and there is no SwarmUI seed at \(seed) to copy: "
                + "run the worker's image (it carries the seed), point SWARMUI_SEED at a prebuilt SwarmUI, or install SwarmUI at \(install)"
        case .copyFailed(let detail):
            "copying SwarmUI's seed to the volume failed, nothing was installed: \(detail) (check free space and permissions on the volume)"
        }
    }
}

/// The few POSIX file operations the seed copy and the model downloads need, with errors that name the path.
enum FileSystem {
    struct Failure: Error, CustomStringConvertible {
        var operation: String
        var path: String
        var code: Int32
        var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
    }

    /// The entry itself, not what a symlink points to; nil when absent.
    static func linkInfo(_ path: String) -> stat? {
        var info = stat()
        return lstat(path, &info) == 0 ? info : nil
    }

    /// What the path resolves to; nil when absent.
    static func info(_ path: String) -> stat? {
        var info = stat()
        return stat(path, &info) == 0 ? info : nil
    }

    /// The size of the entry itself (not a symlink's target); nil when absent.
    static func size(_ path: String) -> Int64? { linkInfo(path).map { Int64($0.st_size) } }

    static func isDirectory(_ info: stat) -> Bool { info.st_mode & S_IFMT == S_IFDIR }

    static func move(_ from: String, _ to: String) throws(Failure) {
        guard rename(from, to) == 0 else { throw Failure(operation: "rename to \(to)", path: from, code: errno) }
    }

    /// Copies a tree keeping symlinks as links (the seed's venv link must stay a link), permission bits and
    /// modification times. `afterFile` gets each regular file's size.
    static func copyTree(from source: String, to target: String, afterFile: (Int64) throws -> Void) throws {
        guard let info = linkInfo(source) else { throw Failure(operation: "lstat", path: source, code: errno) }
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            // Owner-writable while filling it; the seed's own mode is applied afterwards.
            guard mkdir(target, 0o700) == 0 else { throw Failure(operation: "mkdir", path: target, code: errno) }
            for name in try FileManager.default.contentsOfDirectory(atPath: source) {
                try copyTree(from: source + "/" + name, to: target + "/" + name, afterFile: afterFile)
            }
            try setTimes(target, info, followLinks: true)
            guard chmod(target, info.st_mode & 0o7777) == 0 else { throw Failure(operation: "chmod", path: target, code: errno) }
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = readlink(source, &buffer, buffer.count - 1)
            guard length >= 0 else { throw Failure(operation: "readlink", path: source, code: errno) }
            let destination = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard symlink(destination, target) == 0 else { throw Failure(operation: "symlink", path: target, code: errno) }
            try setTimes(target, info, followLinks: false)
        case S_IFREG:
            try copyFile(from: source, to: target, info: info)
            try afterFile(Int64(info.st_size))
        default:
            break  // sockets, FIFOs, devices: nothing SwarmUI needs, and not copyable as data
        }
    }

    private static func copyFile(from source: String, to target: String, info: stat) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw Failure(operation: "open", path: source, code: errno) }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw Failure(operation: "create", path: target, code: errno) }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw Failure(operation: "read", path: source, code: errno) }
            if count == 0 { break }
            try buffer.withUnsafeBytes { try writeAll(output, UnsafeRawBufferPointer(rebasing: $0[..<count]), path: target) }
        }
        guard fchmod(output, info.st_mode & 0o7777) == 0 else { throw Failure(operation: "chmod", path: target, code: errno) }
        var times = [info.st_atim, info.st_mtim]
        guard futimens(output, &times) == 0 else { throw Failure(operation: "set times of", path: target, code: errno) }
    }

    private static func setTimes(_ path: String, _ info: stat, followLinks: Bool) throws(Failure) {
        var times = [info.st_atim, info.st_mtim]
        guard utimensat(AT_FDCWD, path, &times, followLinks ? 0 : AT_SYMLINK_NOFOLLOW) == 0 else {
            throw Failure(operation: "set times of", path: path, code: errno)
        }
    }

    /// Writes every byte, retrying short writes and EINTR; at `position` (pwrite) when given, else where the file is.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at position: Int64? = nil, path: String) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let written =
                if let position { pwrite(fd, bytes.baseAddress! + offset, bytes.count - offset, off_t(position + Int64(offset))) } else {
                    write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                }
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure(operation: "write", path: path, code: errno)
            }
            offset += written
        }
    }

    /// Moves what `source` has and `target` lacks into `target`, recursively; `target`'s own files win.
    static func mergeMissing(from source: String, into target: String) throws {
        guard let targetInfo = linkInfo(target) else {
            try move(source, target)
            return
        }
        guard let sourceInfo = linkInfo(source), isDirectory(sourceInfo), isDirectory(targetInfo) else { return }
        for name in try FileManager.default.contentsOfDirectory(atPath: source) {
            try mergeMissing(from: source + "/" + name, into: target + "/" + name)
        }
    }
}
