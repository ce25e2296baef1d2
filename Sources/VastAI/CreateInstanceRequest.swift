import SwarmCore

/// The body of `PUT /api/v0/asks/{offer_id}/` (vastai.md §1.5), on-demand only: no `price` is ever sent, since
/// sending one makes the instance interruptible.
public struct CreateInstanceRequest: Sendable {
    public enum Source: Sendable, Hashable {
        /// A template's `hash_id`; its runtype, onstart and env apply unless overridden here.
        case template(hashID: String)
        /// `repo/name:tag`.
        case image(String)
    }

    public var source: Source
    /// GB; vast always needs it, even with a template (`recommended_disk_space` is only a hint).
    public var diskGB: Double
    /// ≤256 characters; the fleet's `<prefix>-<unique>`.
    public var label: String?
    /// Env vars and docker flags: `"-p 7865:7865": "1"`, `"KEY": "value"`. Merged with a template's by key.
    public var env: [String: String]
    /// Env vars whose values are credentials; sent like `env`, never printed.
    public var secretEnv: [String: Secret]
    public var onstart: String?
    /// Space-separated tokens such as `"ssh_direc ssh_proxy"`; nil keeps the template's (or vast's `ssh`).
    public var runtype: String?
    /// Fail instead of creating a stopped instance when the GPU is gone (`cancel_unavail`).
    public var cancelUnavailable: Bool

    public init(
        source: Source,
        diskGB: Double,
        label: String? = nil,
        env: [String: String] = [:],
        secretEnv: [String: Secret] = [:],
        onstart: String? = nil,
        runtype: String? = nil,
        cancelUnavailable: Bool = true
    ) {
        self.source = source
        self.diskGB = diskGB
        self.label = label
        self.env = env
        self.secretEnv = secretEnv
        self.onstart = onstart
        self.runtype = runtype
        self.cancelUnavailable = cancelUnavailable
    }

    /// The JSON body. The env is a dict, as the create endpoint wants it (templates store it as a string).
    var body: JSONValue {
        var fields: [String: JSONValue] = [
            "client_id": "me",
            "disk": .double(diskGB),
            "cancel_unavail": .bool(cancelUnavailable),
        ]
        switch source {
        case .template(let hashID): fields["template_hash_id"] = .string(hashID)
        case .image(let image): fields["image"] = .string(image)
        }
        var env = env.mapValues(JSONValue.string)
        for (key, secret) in secretEnv { env[key] = .string(secret.value) }
        fields["env"] = .object(env)
        if let label { fields["label"] = .string(label) }
        if let onstart { fields["onstart"] = .string(onstart) }
        if let runtype { fields["runtype"] = .string(runtype) }
        return .object(fields)
    }
}

/// What a successful create returns.
public struct CreatedInstance: Sendable, Hashable {
    /// `new_contract`: the instance id.
    public var id: Int
    /// Scoped to this one instance; inside the container as `CONTAINER_API_KEY`.
    public var instanceAPIKey: Secret?
}
