import SwarmCore

/// The environment SwarmUI (and the ComfyUI it starts) gets: an allow-list of what a .NET server, a CUDA PyTorch
/// process and their proxies need, never the worker's own settings or credentials. SwarmUI logs every variable whose
/// name begins with `SWARM_`, value included, at start (Program.cs at 062407c), and the worker relays that output
/// to the container log, which anyone with the account's vast key can read (`request_logs`).
public enum SwarmUIEnvironment {
    /// Passed when set, by exact name.
    static let names: Set<String> = [
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR", "HOSTNAME",
        "LD_LIBRARY_PATH", "VIRTUAL_ENV", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING",
        "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_HUB_ENABLE_HF_TRANSFER", "TORCH_HOME",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    ]
    /// Passed when set, by prefix: locale, .NET, CUDA and the GPU runtime, PyTorch and triton tuning, thread counts.
    static let prefixes = [
        "LC_", "DOTNET_", "CUDA_", "NVIDIA_", "NCCL_", "CUBLAS_", "CUDNN_", "PYTORCH_", "TORCH_", "TORCHINDUCTOR_",
        "TRITON_", "XDG_", "OMP_", "MKL_",
    ]
    /// Names that read like credentials are never passed, even when an allowed prefix or `SWARMUI_PASS_ENV` names them.
    static let credentialMarkers = ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "ACCESS_KEY", "AUTHORIZATION", "CREDENTIAL"]

    /// `environment` reduced to the allow-list plus `extra` names (`SWARMUI_PASS_ENV`); a variable whose value holds
    /// one of the worker's secrets is dropped whatever its name.
    public static func filtered(_ environment: [String: String], extra: Set<String>, secrets: [Secret]) -> [String: String] {
        let redactor = SecretRedactor(secrets)
        return environment.filter { name, value in
            guard names.contains(name) || extra.contains(name) || prefixes.contains(where: { name.hasPrefix($0) }) else { return false }
            let upper = name.uppercased()
            if name.hasPrefix("SWARM_") || credentialMarkers.contains(where: { upper.contains($0) }) { return false }
            return !redactor.reveals(value)
        }
    }
}
