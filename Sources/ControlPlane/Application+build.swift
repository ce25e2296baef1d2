import Fleet
import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdCore
import JobStore
import Logging
import ServiceLifecycle
import SwarmCore
import VastAI

/// The control plane as a Hummingbird application: the RunPod-compatible client and worker API under
/// `/v2/{endpoint}`, `/metrics`, `/openapi.json`, and the background services (lease expiry, webhooks, the
/// work-available feed). The store is migrated before the server accepts requests.
///
/// - Parameters:
///   - configuration: endpoints, timeouts, keys, webhook and size settings.
///   - store: where jobs live; a store that needs a running service (a connection pool) passes it in
///     `additionalServices` ahead of anything that uses it.
///   - server: address and server settings (`.init(address: .hostname(host, port: 0))` for an ephemeral port).
///   - serverBuilder: plain HTTP/1.1, or inside TLS (`ServeConfiguration.Listen.serverBuilder()`).
///   - httpClient: sends webhooks.
///   - additionalServices: run in the application's service group before the control plane's own services, e.g.
///     the store's connection pool or a local worker.
///   - costReporting: the cost figures of the costs API and the web page; nil: computed from `store`'s records.
///   - webFleetClient: lets the web page's Fleet view replace an instance; nil when serve runs no vast.ai fleet.
///   - fleetStart: the fleet's download and boot, for queued jobs' start estimates; nil when serve runs no fleet.
public func buildApplication(
    configuration: ControlPlaneConfiguration,
    store: any ControlPlaneStore,
    server: ApplicationConfiguration = ApplicationConfiguration(address: .hostname("127.0.0.1", port: 8288)),
    serverBuilder: HTTPServerBuilder = .http1(),
    httpClient: HTTPClient = .shared,
    logger: Logger = Logger(label: "swarmctl.serve"),
    additionalServices: [any Service] = [],
    costReporting: (any CostReporting)? = nil,
    webFleetClient: VastAIClient? = nil,
    fleetStart: ColdStart? = nil,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> Application<RouterResponder<ControlPlaneRequestContext>> {
    let core = ControlPlaneCore(configuration: configuration, store: store, logger: logger)
    let router = Router(context: ControlPlaneRequestContext.self)
    router.add(middleware: MetricsMiddleware(metrics: core.metrics))
    router.add(middleware: JSONErrorMiddleware())

    router.get("openapi.json") { _, _ in Response.openAPIDocument() }
    // Liveness for load balancers and container health checks: answers without touching the store or needing a key.
    router.get("healthz") { _, _ in Response.json(["status": "ok"]) }
    router.group("metrics").add(middleware: AuthMiddleware(required: .client, keys: core.keys)).get { _, _ in
        let text = try await core.metrics.render(store: store, endpoints: configuration.endpoints)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    // The cost report behind the costs API and the web page's Overview and Costs views.
    let costs: any CostReporting = costReporting ?? StoreCostReporter(store: store)
    // The web page's sessions also let a signed-in browser GET client routes (its costs CSV export link).
    let sessions = WebSessions(secret: configuration.outputs?.signingSecret, secure: configuration.scheme == "https")
    WebRoutes(core: core, sessions: sessions, costs: costs, vast: webFleetClient).register(on: router)
    let clientGroup = router.group("v2/:endpoint").add(middleware: AuthMiddleware(required: .client, keys: core.keys, sessions: sessions))
    let fal = configuration.fal.map { FalForwarder(core: core, settings: $0, httpClient: httpClient) }
    ClientRoutes(core: core, fal: fal, fleetStart: fleetStart).register(on: clientGroup)
    let workerGroup = router.group("v2/:endpoint").add(middleware: AuthMiddleware(required: .worker, keys: core.keys))
    WorkerRoutes(core: core).register(on: workerGroup)
    CostRoutes(core: core, costs: costs).register(on: clientGroup)
    FalRoutes(core: core, httpClient: httpClient).register(on: router)
    if let outputs = configuration.outputs {
        let routes = OutputRoutes(core: core, outputs: outputs, httpClient: httpClient)
        routes.registerUploads(on: workerGroup)
        routes.registerInputs(on: clientGroup)
        routes.registerFiles(on: router)
    }

    var app = Application(
        router: router,
        server: serverBuilder,
        configuration: server,
        services: additionalServices + [
            WorkSignalService(core: core), ExpiryService(core: core, fal: fal), WebhookService(core: core, httpClient: httpClient),
        ]
            + (fal.map { [$0] } ?? [])
            + (fal.flatMap { forwarder in configuration.fal?.spill.map { [SpillOverService(core: core, forwarder: forwarder, settings: $0)] } } ?? []),
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? 0
            fal?.setBaseURL("\(configuration.scheme)://127.0.0.1:\(port)")
            await onServerRunning(port)
        },
        logger: logger
    )
    app.beforeServerStarts {
        try await store.migrate()
        core.migrated.set()
    }
    return app
}
