import Foundation

/// Scaler settings set with `swarmctl instance scale`, stored per endpoint: each field given outranks `serve`'s flag
/// of the same name, so that a running or restarted `serve` follows it (as `instance up|down` does for the size).
public struct ScalerOverride: Sendable, Hashable, Codable {
    public var workersMin: Int?
    public var workersMax: Int?
    public var idleTimeout: Double?
    public var scaler: ScalerType?
    public var scalerValue: Double?
    public var keepWarm: Int?

    public init(
        workersMin: Int? = nil,
        workersMax: Int? = nil,
        idleTimeout: Double? = nil,
        scaler: ScalerType? = nil,
        scalerValue: Double? = nil,
        keepWarm: Int? = nil
    ) {
        self.workersMin = workersMin
        self.workersMax = workersMax
        self.idleTimeout = idleTimeout
        self.scaler = scaler
        self.scalerValue = scalerValue
        self.keepWarm = keepWarm
    }

    public var isEmpty: Bool { self == ScalerOverride() }

    /// `base` with the fields set here replaced.
    public func applied(to base: ScalerSettings) -> ScalerSettings {
        var settings = base
        if let workersMin { settings.workersMin = workersMin }
        if let workersMax { settings.workersMax = workersMax }
        if let idleTimeout { settings.idleTimeout = idleTimeout }
        if let scaler { settings.scaler = scaler }
        if let scalerValue { settings.scalerValue = scalerValue }
        if let keepWarm { settings.keepWarm = keepWarm }
        return settings
    }

    /// This override with the fields `newer` sets replaced.
    public func merging(_ newer: ScalerOverride) -> ScalerOverride {
        ScalerOverride(
            workersMin: newer.workersMin ?? workersMin,
            workersMax: newer.workersMax ?? workersMax,
            idleTimeout: newer.idleTimeout ?? idleTimeout,
            scaler: newer.scaler ?? scaler,
            scalerValue: newer.scalerValue ?? scalerValue,
            keepWarm: newer.keepWarm ?? keepWarm
        )
    }

    /// The stored form: a JSON object of the fields set.
    public var jsonText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// nil for text that is not a stored override.
    public init?(jsonText: String) {
        guard let decoded = try? JSONDecoder().decode(Self.self, from: Data(jsonText.utf8)) else { return nil }
        self = decoded
    }

    /// The flags set, as `instance scale` takes them: `--workers-max 3 --scaler request-count`.
    public var flags: String {
        var parts: [String] = []
        if let workersMin { parts.append("--workers-min \(workersMin)") }
        if let workersMax { parts.append("--workers-max \(workersMax)") }
        if let idleTimeout { parts.append("--idle-timeout \(ScalerSettings.number(idleTimeout))") }
        if let scaler { parts.append("--scaler \(scaler.rawValue)") }
        if let scalerValue { parts.append("--scaler-value \(ScalerSettings.number(scalerValue))") }
        if let keepWarm { parts.append("--keep-warm \(keepWarm)") }
        return parts.joined(separator: " ")
    }
}
