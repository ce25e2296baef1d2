import ArgumentParser
import AsyncHTTPClient
import ControlPlane
import Crypto
import Foundation
import JobProtocol
import NIOCore
import NIOHTTP1
import SwarmCore

/// `swarmctl download ID`: every file of a completed job, streamed to disk and checked against its sha256.
struct Download: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Download a completed job's files and verify their sha256.")
    @OptionGroup var target: ClientOptions
    @Argument(help: "The job id.") var id: String
    @Option(help: "Directory to write the files to.") var out = "."

    func run() async throws {
        let job = try await target.client().status(id: id)
        guard job["status"]?.stringValue == "COMPLETED" else {
            throw DownloadError("job \(id) is \(job["status"]?.stringValue ?? "unknown"), not COMPLETED; nothing to download yet")
        }
        let files = job["output"]?["files"]?.arrayValue ?? []
        guard !files.isEmpty else { throw DownloadError("job \(id) has no files in its output") }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for (index, entry) in files.enumerated() {
            guard let file = OutputFile(json: entry) else { throw DownloadError("file \(index) of job \(id) has no url") }
            // Only the last path component: a name from the job must not write outside --out.
            let last = (file.name as NSString).lastPathComponent
            let name = last.isEmpty || last == ".." ? "output-\(index)" : last
            let path = (out as NSString).appendingPathComponent(name)
            let sha256 = try await Self.fetch(file.url, to: path, name: name, expectedBytes: file.bytes > 0 ? file.bytes : nil)
            if !file.sha256.isEmpty, file.sha256 != sha256 {
                try? FileManager.default.removeItem(atPath: path)
                throw DownloadError("\(name): sha256 is \(sha256), the job says \(file.sha256); the file was removed")
            }
            print(path)
        }
    }

    /// Streams `url` (http(s) or a data URL) into a temporary file next to `path`, then renames it into place.
    /// Returns the sha256 of what was written.
    static func fetch(_ url: String, to path: String, name: String, expectedBytes: Int64?) async throws -> String {
        let temporary = path + ".partial"
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
            throw DownloadError("cannot write \(temporary)")
        }
        var hasher = SHA256()
        do {
            defer { try? handle.close() }
            if url.hasPrefix("data:") {
                guard let comma = url.firstIndex(of: ","), let data = Data(base64Encoded: String(url[url.index(after: comma)...])) else {
                    throw DownloadError("\(name): the data URL is not base64")
                }
                hasher.update(data: data)
                try handle.write(contentsOf: data)
            } else {
                let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .hours(1))
                guard response.status == .ok else {
                    throw DownloadError(
                        "\(name): HTTP \(response.status.code) from its link (an expired link? links last SWARM_PRESIGN_EXPIRES seconds)"
                    )
                }
                let total = expectedBytes ?? response.headers.first(name: "content-length").flatMap { Int64($0) }
                var received: Int64 = 0
                var shown = ContinuousClock.now
                for try await chunk in response.body {
                    chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                    try handle.write(contentsOf: chunk.readableBytesView)
                    received += Int64(chunk.readableBytes)
                    if ContinuousClock.now - shown >= .milliseconds(200) {
                        shown = .now
                        progress(name, received, total)
                    }
                }
                progress(name, received, total)
                FileHandle.standardError.write(Data("\n".utf8))
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: temporary, toPath: path)
        return hasher.finalize().hexString
    }

    private static func progress(_ name: String, _ received: Int64, _ total: Int64?) {
        let percent = total.flatMap { $0 > 0 ? " \(received * 100 / $0)%" : nil } ?? ""
        let of = total.map { " of \(formatBytes($0))" } ?? ""
        FileHandle.standardError.write(Data("\r\(name): \(formatBytes(received))\(of)\(percent)   ".utf8))
    }
}

/// A download that failed, said for the person running it.
struct DownloadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
