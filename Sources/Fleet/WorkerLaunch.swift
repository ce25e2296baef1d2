import Foundation
import SwarmCore

/// How a fleet instance's container comes to run swarm-worker, and whether a template would run it at all.
///
/// Under vast's `ssh` and `jupyter` run types (and with no run type, which means `ssh`) vast replaces the image's
/// ENTRYPOINT with its own and runs only the `onstart` script (vastai.md §1.5): without one that starts the worker, the
/// instance is billed while nothing in it ever pings.
public enum WorkerLaunch {
    /// The image's entrypoint for those run types: starts swarm-worker under its restart supervisor and returns.
    public static let onstart = "bash /opt/swarm/onstart.sh"
    /// SSH, so that an operator can look inside and forward SwarmUI's UI; the worker starts through `onstart`.
    public static let runtype = "ssh_direc ssh_proxy"
    /// The worker's `/health` and `/metrics` in the container (off 8080, which vast's Jupyter run type takes).
    public static let healthPort = 18080
    /// Where SwarmUI listens inside the container (loopback only; reach it through an SSH tunnel).
    public static let swarmUIPort = 7801

    /// Why instances created from `template` would never start the worker, or nil when they would.
    public static func problem(withTemplate template: JSONValue, hashID: String) -> String? {
        let runtype = template["runtype"]?.stringValue ?? "ssh"
        if runtype.split(separator: " ").contains("args") { return nil }
        let onstart = template["onstart"]?.stringValue ?? ""
        if onstart.contains("onstart.sh") || onstart.contains("swarm-worker") { return nil }
        let what =
            onstart.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            ? "no on-start script" : "an on-start script that does not start swarm-worker"
        return "template \(hashID) has run type '\(runtype)' and \(what): under ssh and jupyter run types vast replaces the image's "
            + "ENTRYPOINT, so swarm-worker would never run and the instance would be billed for nothing. Set the template's on-start "
            + "script to '\(Self.onstart)', or its run type to args, or use --image"
    }

    /// The SSH command that forwards SwarmUI's UI to this machine's port 7801 (SwarmUI itself stays on the
    /// container's loopback, never exposed).
    public static func swarmUITunnel(sshHost: String?, sshPort: Int?) -> String? {
        guard let sshHost, !sshHost.isEmpty, let sshPort else { return nil }
        return "ssh -N -p \(sshPort) -L \(swarmUIPort):127.0.0.1:\(swarmUIPort) root@\(sshHost)   # then open http://127.0.0.1:\(swarmUIPort)"
    }
}
