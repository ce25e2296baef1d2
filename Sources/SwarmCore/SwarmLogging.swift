import Foundation
import Logging

public enum SwarmLogging {
    /// Logs to standard output (what `docker logs` and vast's `request_logs` collect) at `level`, once per process.
    /// Every message and metadata value is scrubbed of `secrets` first: an error that quotes a URL with a token, or a
    /// line SwarmUI printed, never carries it out.
    public static func bootstrap(level: Logger.Level, label: String, redacting secrets: [Secret] = []) -> Logger {
        let redactor = SecretRedactor(secrets)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return RedactingLogHandler(wrapping: handler, redactor: redactor)
        }
        return Logger(label: label)
    }
}

/// A log handler that scrubs secrets from each event's message and metadata before the wrapped handler writes it.
public struct RedactingLogHandler: LogHandler {
    private var inner: any LogHandler
    private let redactor: SecretRedactor

    public init(wrapping inner: any LogHandler, redactor: SecretRedactor) {
        self.inner = inner
        self.redactor = redactor
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        event.message = "\(redactor.redact(event.message.description))"
        event.metadata = event.metadata?.mapValues(redact)
        inner.log(event: event)
    }

    private func redact(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): .string(redactor.redact(text))
        case .stringConvertible(let convertible): .string(redactor.redact(convertible.description))
        case .array(let values): .array(values.map(redact))
        case .dictionary(let values): .dictionary(values.mapValues(redact))
        }
    }
}
