import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import SwarmCore

import Foundation

/// The Python queue peer (tests/Fixtures/queue-peer) as a separate process that a test can kill and start again on
/// the same port with the same state file.
final class QueuePeer: Sendable {
    let key = "worker-test-key"
    let stateFile: String
    let port: Int
    private let process: ChildProcess

    static func start(stateFile: String, port: Int = 0, hold: Double = 2) async throws -> QueuePeer {
        let script = Paths.root.appendingPathComponent("tests/Fixtures/queue-peer/queue_peer.py").path
        let process = try ChildProcess(
            "queue-peer",
            executable: "/usr/bin/env",
            arguments: ["python3", script, "--state", stateFile, "--port", String(port), "--key", "worker-test-key", "--hold", String(hold)]
        )
        let line = try await process.waitForLine(containing: "queue peer listening on", timeout: .seconds(30))
        guard let actual = line.split(separator: ":").last.flatMap({ Int($0) }) else { throw TimedOut(what: "a port in '\(line)'") }
        return QueuePeer(stateFile: stateFile, port: actual, process: process)
    }

    private init(stateFile: String, port: Int, process: ChildProcess) {
        self.stateFile = stateFile
        self.port = port
        self.process = process
    }

    var queueURL: String { "http://127.0.0.1:\(port)/v2/swarmui" }

    func kill() async throws {
        process.signal(SIGKILL)
        _ = try await process.waitForExit(timeout: .seconds(10))
    }

    /// The same queue again (same port, same state), after `kill()`.
    func restarted() async throws -> QueuePeer {
        try await Self.start(stateFile: stateFile, port: port)
    }

    func stop() { process.stop() }

    func enqueue(_ id: String, _ input: JSONValue) async throws {
        _ = try await post("/control/enqueue", ["id": .string(id), "input": input])
    }

    func requestStop(_ id: String) async throws {
        _ = try await post("/control/stop", ["id": .string(id)])
    }

    func state() async throws -> JSONValue {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/control/state"), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 256 << 20)
        guard let value = JSONValue.parse(Data(body.readableBytesView)) else { throw TimedOut(what: "queue peer state as JSON") }
        return value
    }

    /// The final result for `id`, once the queue has one.
    func result(_ id: String, timeout: Duration = .seconds(60)) async throws -> JSONValue {
        try await eventually("a result for job \(id)", timeout: timeout) { try await self.state()["results"]?[id] }
    }

    func deliveries(of id: String) async throws -> Int {
        try await state()["deliveries"]?.arrayValue?.filter { $0["id"]?.stringValue == id }.count ?? 0
    }

    private func post(_ path: String, _ body: JSONValue) async throws -> JSONValue? {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: body.jsonString()))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        return JSONValue.parse(Data(try await response.body.collect(upTo: 1 << 20).readableBytesView))
    }
}
