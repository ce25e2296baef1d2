import SwarmCore

extension SwarmUIClient {
    /// `ListModels` (§5.6): `{"folders":[...],"files":[model...]}` under `path` (`""` = root), `depth` 1...20.
    public func listModels(path: String = "", depth: Int = 20, subtype: String = "Stable-Diffusion") async throws(SwarmUIError) -> JSONValue {
        try await call("ListModels", ["path": .string(path), "depth": .int(depth), "subtype": .string(subtype)])
    }

    /// `DescribeModel` (§5.7): the model object. A name without extension means `.safetensors`.
    public func describeModel(name: String, subtype: String = "Stable-Diffusion") async throws(SwarmUIError) -> JSONValue {
        let json = try await call("DescribeModel", ["modelName": .string(name), "subtype": .string(subtype)])
        guard let model = json["model"], model.objectValue != nil else {
            throw SwarmUIError(.badResponse, route: "DescribeModel", detail: "no model object in the answer")
        }
        return model
    }

    /// `EditModelMetadata` (§5.8) changing only `changes` (argument names such as `type`, `title`, `standard_width`).
    /// SwarmUI overwrites every text field, so the current values are read with `DescribeModel` and sent back.
    public func editModelMetadata(
        model: String,
        subtype: String = "Stable-Diffusion",
        changes: [String: JSONValue]
    ) async throws(SwarmUIError) {
        let current = try await describeModel(name: model, subtype: subtype)
        var arguments = Self.editArguments(from: current)
        arguments["model"] = current["name"].flatMap(\.stringValue).map(JSONValue.string) ?? .string(model)
        arguments["subtype"] = .string(subtype)
        arguments.merge(changes) { _, new in new }
        _ = try await call("EditModelMetadata", arguments)
    }

    /// The required `EditModelMetadata` arguments, filled from a model object (null becomes "").
    static func editArguments(from model: JSONValue) -> [String: JSONValue] {
        func text(_ key: String) -> JSONValue {
            switch model[key] {
            case .some(.string(let value)): return .string(value)
            case .some(.array(let values)): return .string(values.compactMap(\.stringValue).joined(separator: ","))
            default: return ""
            }
        }
        return [
            "title": text("title"), "author": text("author"), "type": text("architecture"),
            "description": text("description"), "usage_hint": text("usage_hint"), "date": text("date"),
            "license": text("license"), "trigger_phrase": text("trigger_phrase"),
            "prediction_type": text("prediction_type"), "tags": text("tags"),
            "standard_width": .int(model["standard_width"].looseInt ?? 0),
            "standard_height": .int(model["standard_height"].looseInt ?? 0),
            "is_negative_embedding": .bool(model["is_negative_embedding"].looseBool ?? false),
            "lora_default_weight": text("lora_default_weight"),
            "lora_default_confinement": text("lora_default_confinement"),
        ]
    }

    /// `DoModelDownloadWS` (§5.9): reports progress until SwarmUI says `success`. Cancelling the task sends
    /// SwarmUI's `{"signal":"cancel"}` before closing, so the partial download is abandoned.
    public func downloadModel(
        _ download: SwarmUIModelDownload,
        onProgress: @escaping @Sendable (SwarmUIDownloadProgress) async -> Void
    ) async throws(SwarmUIError) {
        let route = "DoModelDownloadWS"
        let frame: [String: JSONValue] = [
            "url": .string(download.url), "type": .string(download.type), "name": .string(download.name),
            "metadata": download.metadata ?? .null,
        ]
        let succeeded = AtomicFlag()
        let ending = try await withSession { session throws(SwarmUIError) in
            try await webSocketCall(route, frame: frame, session: session, cancelFrame: ["signal": "cancel"]) {
                json throws(SwarmUIError) in
                if json["success"].looseBool == true {
                    succeeded.set()
                    return .finish
                }
                if json["overall_percent"] != nil || json["current_percent"] != nil {
                    await onProgress(
                        SwarmUIDownloadProgress(
                            currentPercent: json["current_percent"].looseDouble ?? 0,
                            overallPercent: json["overall_percent"].looseDouble ?? 0,
                            perSecond: json["per_second"].looseDouble ?? 0
                        )
                    )
                }
                return .next
            }
        }
        guard succeeded.isSet else {
            let reason = if case .dropped(let why) = ending { why } else { "closed without reporting success" }
            throw SwarmUIError(.connectionClosed, route: route, detail: reason)
        }
    }
}
