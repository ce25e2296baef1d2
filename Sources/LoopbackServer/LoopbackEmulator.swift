import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// A stand-in for a remote service (SwarmUI, vast.ai, fal.ai) served by Hummingbird: in process on an ephemeral
/// loopback port for tests (`withRunningEmulator`), or as a process until SIGTERM (`serveEmulator`). One start-up
/// for every emulator.
public protocol LoopbackEmulator: Sendable {
    associatedtype Routes: HTTPResponderBuilder where Routes.Responder.Context: InitializableFromSource<ApplicationRequestContextSource>
    associatedtype App: ApplicationProtocol
    /// The `Server` header, as the real service sends it.
    static var serverName: String { get }
    /// The emulator's routes, control routes included.
    func makeRouter() -> Routes
    /// The application serving the routes on `host:port`; `onListening` gets the port the kernel chose.
    func application(host: String, port: Int, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void) -> App
    /// Told the URL it is reachable at once it listens (for the links it hands out).
    func started(baseURL: String) async
    /// Told when its server is about to stop (to end what it runs, such as instances' processes).
    func stopping() async
}

extension LoopbackEmulator {
    public func started(baseURL: String) async {}
    public func stopping() async {}

    /// `routes` on `host:port` behind `server` (plain HTTP/1.1, or with a WebSocket upgrade).
    public func application<Builder: HTTPResponderBuilder>(
        routes: Builder,
        server: HTTPServerBuilder = .http1(),
        host: String,
        port: Int,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void
    ) -> Application<Builder.Responder> {
        Application(
            router: routes,
            server: server,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: Self.serverName),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }
}

extension LoopbackEmulator {
    /// The routes over plain HTTP/1.1.
    public func application(
        host: String,
        port: Int,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void
    ) -> Application<Routes.Responder> {
        application(routes: makeRouter(), host: host, port: port, logger: logger, onListening: onListening)
    }
}

/// An emulator serving on a port of 127.0.0.1, as handed to `withRunningEmulator`'s body.
public struct RunningLoopbackEmulator<Emulator: Sendable>: Sendable {
    public let port: Int
    /// `http://127.0.0.1:<port>`: the value for the client's base URL (`--fal-url`, `VAST_API_URL`, ...).
    public let baseURL: String
    public let emulator: Emulator
}

/// Runs `emulator` on an ephemeral port of 127.0.0.1 for the duration of `body`.
public func withRunningEmulator<Emulator: LoopbackEmulator, T>(
    _ emulator: Emulator,
    logger: Logger,
    _ body: (RunningLoopbackEmulator<Emulator>) async throws -> T
) async throws -> T {
    try await withLoopbackServer({ emulator.application(host: "127.0.0.1", port: 0, logger: logger, onListening: $0) }) { port in
        let baseURL = "http://127.0.0.1:\(port)"
        await emulator.started(baseURL: baseURL)
        do {
            let result = try await body(RunningLoopbackEmulator(port: port, baseURL: baseURL, emulator: emulator))
            await emulator.stopping()
            return result
        } catch {
            await emulator.stopping()
            throw error
        }
    }
}

/// Serves `emulator` on `host:port` until SIGTERM or SIGINT, printing "`name` listening on http://host:port" once it
/// listens: tests and supervisors parse that exact line.
public func serveEmulator<Emulator: LoopbackEmulator>(_ emulator: Emulator, name: String, host: String, port: Int, logger: Logger) async throws {
    let reachable = host == "0.0.0.0" ? "127.0.0.1" : host
    let app = emulator.application(host: host, port: port, logger: logger) { boundPort in
        await emulator.started(baseURL: "http://\(reachable):\(boundPort)")
        FileHandle.standardOutput.write(Data("\(name) listening on http://\(reachable):\(boundPort)\n".utf8))
    }
    var configuration = ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    // Open connections (SwarmUI's generation sockets) would otherwise hold a graceful shutdown for as long as they run.
    configuration.maximumGracefulShutdownDuration = .seconds(5)
    do {
        try await ServiceGroup(configuration: configuration).run()
    } catch {
        await emulator.stopping()
        throw error
    }
    await emulator.stopping()
}

/// A TCP port of 127.0.0.1 that nothing listens on now, from the kernel (for a child process to listen on).
public func freeLoopbackPort() throws -> Int {
    let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socketFD >= 0 else { throw LoopbackPortError(call: "socket", errno: errno) }
    defer { close(socketFD) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, length) == 0 && getsockname(socketFD, $0, &length) == 0 }
    }
    guard bound else { throw LoopbackPortError(call: "bind", errno: errno) }
    return Int(UInt16(bigEndian: address.sin_port))
}

public struct LoopbackPortError: Error, CustomStringConvertible {
    public var call: String
    public var errno: Int32
    public var description: String { "finding a free loopback port: \(call) failed with errno \(errno)" }
}
