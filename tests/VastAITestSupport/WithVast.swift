import Logging
import SwarmCore
import VastAI
import VastAIEmulator

/// Runs `body` against a fresh emulator with a client whose waits are short.
public func withVast<T>(
    _ configuration: VastAIEmulator.Configuration = .init(),
    apiKey: String? = nil,
    maxAttempts: Int = 4,
    _ body: (RunningVastAIEmulator, VastAIClient) async throws -> T
) async throws -> T {
    try await VastAIEmulator.withRunning(configuration: configuration) { running in
        let client = VastAIClient(
            configuration: .init(
                apiKey: Secret(apiKey ?? configuration.apiKey),
                baseURL: running.baseURL,
                maxAttempts: maxAttempts,
                backoff: Backoff(initial: .milliseconds(20), maximum: .milliseconds(100)),
                requestTimeout: .seconds(10),
                logPollInterval: .milliseconds(50),
                logPollAttempts: 40
            ),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        return try await body(running, client)
    }
}
