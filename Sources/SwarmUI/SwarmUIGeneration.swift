import NIOCore
import SwarmCore

/// One `GenerateText2Image(WS)` request: the route argument `images` plus flat T2I parameters (§5.12, §7).
public struct SwarmUIGenerationRequest: Sendable, Hashable {
    /// How many generations to run (`images`); outputs get batch indices `0..<images*batchsize`.
    public var images: Int
    /// T2I parameters by id (`prompt`, `model`, `videoframes`...); `session_id` and `images` are added by the client.
    public var parameters: [String: JSONValue]

    public init(images: Int = 1, parameters: [String: JSONValue]) {
        self.images = images
        self.parameters = parameters
    }
}

/// What a WebSocket generation reports while it runs.
public enum SwarmUIGenerationEvent: Sendable, Hashable {
    /// Queue, model-load and backend counters changed (a full status snapshot).
    case status(SwarmUIStatus)
    /// Fractions 0...1: `overallPercent` over the whole request, `currentPercent` within the current stage.
    case progress(batchIndex: Int, overallPercent: Double, currentPercent: Double)
    /// SwarmUI is alive; sent when a sub-task ends and at least every 30 s.
    case keepAlive
}

/// A final output of a generation.
public struct SwarmUIGeneratedOutput: Sendable, Hashable {
    /// `View/<user>/...` (not URL-encoded) or a `data:` URL when `donotsave` was set; pass it to `fetchOutput`.
    public var reference: String
    public var batchIndex: Int
    public var requestID: String?
    /// SwarmUI's metadata JSON text (`sui_image_params`...), when sent.
    public var metadata: String?
    public var isDataURL: Bool

    public init(reference: String, batchIndex: Int, requestID: String?, metadata: String?) {
        self.reference = reference
        self.batchIndex = batchIndex
        self.requestID = requestID
        self.metadata = metadata
        self.isDataURL = reference.hasPrefix("data:")
    }
}

/// An output's bytes as they arrive: files are streamed from SwarmUI, never held whole in memory.
public struct SwarmUIOutput: Sendable {
    public var contentType: String
    /// Byte count when SwarmUI sent `Content-Length` (always known for data URLs).
    public var length: Int64?
    public var body: any AsyncSequence<ByteBuffer, any Error> & Sendable

    public init(contentType: String, length: Int64?, body: any AsyncSequence<ByteBuffer, any Error> & Sendable) {
        self.contentType = contentType
        self.length = length
        self.body = body
    }
}

/// A `DoModelDownloadWS` request (§5.9).
public struct SwarmUIModelDownload: Sendable, Hashable {
    /// `http(s)://` URL of the file; a URL ending in `.gguf` is saved as GGUF, anything else as safetensors.
    public var url: String
    /// Model subtype: `Stable-Diffusion`, `LoRA`, `VAE`, `Clip`...
    public var type: String
    /// Save name without extension; SwarmUI turns spaces into `_` and removes dots.
    public var name: String
    public var metadata: JSONValue?

    public init(url: String, type: String = "Stable-Diffusion", name: String, metadata: JSONValue? = nil) {
        self.url = url
        self.type = type
        self.name = name
        self.metadata = metadata
    }
}

public struct SwarmUIDownloadProgress: Sendable, Hashable {
    /// 0...1 of the current file.
    public var currentPercent: Double
    public var overallPercent: Double
    /// Bytes per second.
    public var perSecond: Double

    public init(currentPercent: Double, overallPercent: Double, perSecond: Double) {
        self.currentPercent = currentPercent
        self.overallPercent = overallPercent
        self.perSecond = perSecond
    }
}
