import Foundation

/// Deterministic stand-ins for generated files: a real file signature for the type, then pseudo-random bytes
/// seeded by the output path, so the same request always yields the same bytes.
enum OutputFiles {
    static func contentType(forExtension ext: String) -> String {
        switch ext.lowercased() {
        case "png": "image/png"
        case "jpg", "jpeg": "image/jpeg"
        case "webp": "image/webp"
        case "gif": "image/gif"
        case "mp4": "video/mp4"
        case "webm": "video/webm"
        case "mov": "video/quicktime"
        default: "application/octet-stream"
        }
    }

    private static func signature(forExtension ext: String) -> [UInt8] {
        switch ext {
        case "png": [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        case "jpg": [0xFF, 0xD8, 0xFF, 0xE0]
        case "gif": Array("GIF89a".utf8)
        case "webp": Array("RIFF\0\0\0\0WEBP".utf8)
        case "webm": [0x1A, 0x45, 0xDF, 0xA3]
        case "mp4", "mov": [0, 0, 0, 0x18] + Array("ftypisom".utf8) + [0, 0, 2, 0] + Array("isomiso2".utf8)
        default: []
        }
    }

    /// Produces `size` bytes in chunks of at most `chunkSize`, never the whole file at once.
    static func generate(size: Int, seed: String, ext: String, chunkSize: Int = 1 << 20, _ body: ([UInt8]) throws -> Void) rethrows {
        var state: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in seed.utf8 { state = (state ^ UInt64(byte)) &* 0x100_0000_01b3 }
        if state == 0 { state = 1 }
        let header = signature(forExtension: ext.lowercased())
        var written = 0
        while written < size {
            let count = min(chunkSize, size - written)
            var chunk = [UInt8](repeating: 0, count: count)
            for index in 0..<count {
                let position = written + index
                if position < header.count {
                    chunk[index] = header[position]
                } else {
                    // xorshift64: cheap and deterministic.
                    state ^= state << 13
                    state ^= state >> 7
                    state ^= state << 17
                    chunk[index] = UInt8(truncatingIfNeeded: state)
                }
            }
            try body(chunk)
            written += count
        }
    }

    static func write(to path: String, size: Int, ext: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown)
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try generate(size: size, seed: path, ext: ext) { chunk in try handle.write(contentsOf: chunk) }
    }

    static func dataURL(size: Int, seed: String, ext: String) -> String {
        var bytes = Data(capacity: size)
        generate(size: size, seed: seed, ext: ext) { bytes.append(contentsOf: $0) }
        return "data:\(contentType(forExtension: ext));base64,\(bytes.base64EncodedString())"
    }
}
