import Foundation
import Hummingbird
import HummingbirdWebSocket
import SwarmCore

extension SwarmUIEmulator {
    /// `/Emulator/...`: fault injection and observation for a harness driving the emulator as a separate process.
    nonisolated func addControlRoutes(to router: Router<BasicWebSocketRequestContext>) {
        router.post("/Emulator/Restart") { _, _ -> Response in
            await self.restart()
            return Self.response(.ok(["success": true]))
        }
        router.post("/Emulator/Backend") { request, context -> Response in
            let body = try await Self.jsonBody(request)
            switch body["state"]?.stringValue {
            case "errored": await self.setBackendErrored(true)
            case "running": await self.setBackendErrored(false)
            default: return Self.response(.apiError(400, id: "emulator", "state must be \"errored\" or \"running\""))
            }
            return Self.response(.ok(["success": true]))
        }
        router.post("/Emulator/ComfyCrash") { request, context -> Response in
            let body = try await Self.jsonBody(request)
            let errored = body["errored_ms"]?.looseInt ?? 2000
            let loading = body["loading_ms"]?.looseInt ?? 1000
            guard errored >= 0, loading >= 0 else {
                return Self.response(.apiError(400, id: "emulator", "errored_ms and loading_ms must be non-negative integers"))
            }
            await self.crashComfyUI(erroredFor: .milliseconds(errored), loadingFor: .milliseconds(loading))
            return Self.response(.ok(["success": true]))
        }
        router.post("/Emulator/StepTime") { request, context -> Response in
            guard let ms = try await Self.jsonBody(request)["ms"]?.looseInt, ms >= 0 else {
                return Self.response(.apiError(400, id: "emulator", "ms must be a non-negative integer"))
            }
            await self.setStepDuration(.milliseconds(ms))
            return Self.response(.ok(["success": true]))
        }
        router.post("/Emulator/Crash") { request, context -> Response in
            guard self.configuration.allowsCrash else {
                return Self.response(.apiError(403, id: "emulator", "crashing is only allowed in the swarmui-emulator process"))
            }
            let code = try await Self.jsonBody(request)["exit_code"]?.looseInt ?? 1
            // Like a crash: no shutdown, no flushing, connections drop.
            _exit(Int32(truncatingIfNeeded: code))
        }
        router.get("/Emulator/State") { _, _ -> Response in
            Self.response(.ok(await self.stateJSON()))
        }
    }

    private static func jsonBody(_ request: Request) async throws -> JSONValue {
        var request = request
        let buffer = try await request.collectBody(upTo: 1 << 20)
        return JSONValue.parse(Data(buffer.readableBytesView)) ?? [:]
    }
}
