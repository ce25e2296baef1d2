import Foundation

/// The part of a GGUF file's header that decides whether ComfyUI-GGUF loads it as a diffusion model:
/// `general.architecture` (loader.py at city96/ComfyUI-GGUF 795e451, `gguf_sd_loader`).
///
/// A SwarmUI `.swarm.json` sidecar changes how SwarmUI classifies the file, not this check: a file ComfyUI-GGUF
/// refuses fails every job at its first step, so the worker refuses it when it is downloaded.
public struct GGUFHeader: Sendable, Hashable {
    /// `general.architecture`, nil when the file has none (ComfyUI-GGUF then guesses from tensor names).
    public var architecture: String?

    /// Diffusion-model architectures ComfyUI-GGUF loads (`IMG_ARCH_LIST`), plus the values it treats as "unknown,
    /// detect from the tensors" (`None`, `pig`, `cow`: files converted by stable-diffusion.cpp or older tools).
    public static let loadableArchitectures: Set<String> = [
        "flux", "sd1", "sdxl", "sd3", "aura", "hidream", "cosmos", "ltxv", "hyvid", "wan", "lumina2", "qwen_image",
    ]
    static let detectedArchitectures: Set<String> = ["pig", "cow"]

    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case notGGUF
        case unsupportedVersion(UInt32)
        case truncated
        case malformed(String)

        public var description: String {
            switch self {
            case .notGGUF: "it is not a GGUF file (no GGUF magic at the start: an error page saved in its place?)"
            case .unsupportedVersion(let version): "its GGUF version \(version) is not one ComfyUI-GGUF reads (2 or 3)"
            case .truncated: "its GGUF header is cut short"
            case .malformed(let detail): "its GGUF header is malformed (\(detail))"
            }
        }
    }

    /// Why ComfyUI-GGUF would refuse this file as the diffusion model of a SwarmUI `architecture` class (e.g.
    /// `wan-2_2-image2video-14b`), or nil when it loads it.
    public func refusal(forSwarmUIArchitecture swarmArchitecture: String?) -> String? {
        guard let architecture, !Self.detectedArchitectures.contains(architecture) else { return nil }
        guard Self.loadableArchitectures.contains(architecture) else {
            return "its general.architecture is '\(architecture)', which ComfyUI-GGUF does not load as a diffusion model "
                + "(it loads \(Self.loadableArchitectures.sorted().joined(separator: ", ")))"
        }
        if let swarmArchitecture, swarmArchitecture.hasPrefix("wan-"), architecture != "wan" {
            return "its general.architecture is '\(architecture)', not 'wan', but models.json says it is \(swarmArchitecture)"
        }
        return nil
    }

    /// Reads the header at the start of the file at `path` (at most `limit` bytes; metadata before the
    /// architecture key is small in practice).
    public static func read(path: String, limit: Int = 4 << 20) throws -> GGUFHeader {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? handle.close() }
        let data = try handle.read(upToCount: limit) ?? Data()
        return try parse([UInt8](data))
    }

    /// Parses the header from the file's first bytes: magic, version, tensor and key counts, then key/value pairs
    /// until `general.architecture` (or the end of the metadata).
    public static func parse(_ bytes: [UInt8]) throws(ParseError) -> GGUFHeader {
        var reader = Reader(bytes: bytes)
        guard bytes.count >= 4, bytes[0..<4] == [0x47, 0x47, 0x55, 0x46] else { throw .notGGUF }  // "GGUF"
        reader.offset = 4
        let version = try reader.u32()
        guard version == 2 || version == 3 else { throw .unsupportedVersion(version) }
        _ = try reader.u64()  // tensor count
        let keys = try reader.u64()
        guard keys < 1 << 20 else { throw .malformed("\(keys) metadata keys") }
        for _ in 0..<keys {
            let key = try reader.string()
            let type = try reader.u32()
            if key == "general.architecture" {
                guard type == 8 else { throw .malformed("general.architecture is not a string") }
                return GGUFHeader(architecture: try reader.string())
            }
            try reader.skipValue(type: type)
        }
        return GGUFHeader(architecture: nil)
    }

    /// Little-endian reads over the header bytes.
    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func take(_ count: Int) throws(ParseError) -> ArraySlice<UInt8> {
            guard count >= 0, offset + count <= bytes.count else { throw .truncated }
            defer { offset += count }
            return bytes[offset..<offset + count]
        }

        mutating func u32() throws(ParseError) -> UInt32 {
            try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
        }

        mutating func u64() throws(ParseError) -> UInt64 {
            try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }

        mutating func string() throws(ParseError) -> String {
            let length = try u64()
            guard length < 1 << 24 else { throw .malformed("a \(length)-byte string") }
            return String(decoding: try take(Int(length)), as: UTF8.self)
        }

        /// Skips one value of GGUF type `type` (gguf.GGUFValueType).
        mutating func skipValue(type: UInt32) throws(ParseError) {
            switch type {
            case 0, 1, 7: _ = try take(1)
            case 2, 3: _ = try take(2)
            case 4, 5, 6: _ = try take(4)
            case 10, 11, 12: _ = try take(8)
            case 8: _ = try string()
            case 9:
                let elementType = try u32()
                let count = try u64()
                guard count < 1 << 28 else { throw .malformed("an array of \(count) values") }
                for _ in 0..<count { try skipValue(type: elementType) }
            default: throw .malformed("value type \(type)")
            }
        }
    }
}
