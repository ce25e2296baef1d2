import Foundation
import Hummingbird
import SwarmCore

extension VastAIEmulator {
    /// `/emulator/...`: steering for a harness that runs the emulator as a separate process. No key needed, so a
    /// test can always reach them; vast has no such routes.
    nonisolated func addControlRoutes(to router: Router<BasicRequestContext>) {
        router.post("/emulator/fault") { request, _ -> Response in
            let body = try await Self.controlBody(request)
            guard let id = body["instance"]?.intValue else { return Self.response(.failure(400, "emulator", "instance must be an id")) }
            let name = body["fault"]?.stringValue
            guard name == nil || Fault(rawValue: name ?? "") != nil else {
                let known = Fault.allCases.map(\.rawValue).joined(separator: ", ")
                return Self.response(.failure(400, "emulator", "fault must be null or one of \(known)"))
            }
            await self.inject(name.flatMap(Fault.init(rawValue:)), instance: id)
            return Self.response(.ok(["success": true]))
        }
        router.post("/emulator/rate-limit") { request, _ -> Response in
            let body = try await Self.controlBody(request)
            if body["search_quota"]?.boolValue == true {
                await self.exhaustSearchQuota()
            } else {
                await self.rateLimitNext(
                    body["count"]?.intValue ?? 1,
                    retryAfter: body["retry_after"]?.stringValue,
                    method: body["method"]?.stringValue?.uppercased()
                )
            }
            return Self.response(.ok(["success": true]))
        }
        router.post("/emulator/take-offer") { request, _ -> Response in
            guard let id = try await Self.controlBody(request)["id"]?.intValue else {
                return Self.response(.failure(400, "emulator", "id must be an offer id"))
            }
            await self.takeOffer(id: id)
            return Self.response(.ok(["success": true]))
        }
        router.post("/emulator/take-gpu") { request, _ -> Response in
            let body = try await Self.controlBody(request)
            guard let id = body["instance"]?.intValue else { return Self.response(.failure(400, "emulator", "instance must be an id")) }
            let mode = body["mode"]?.stringValue
            guard mode == nil || GPULoss(rawValue: mode ?? "") != nil else {
                return Self.response(.failure(400, "emulator", "mode must be null, refuse or schedule"))
            }
            await self.takeGPU(instance: id, mode.flatMap(GPULoss.init(rawValue:)))
            return Self.response(.ok(["success": true]))
        }
        router.get("/emulator/charges") { _, _ -> Response in
            let total = await self.totalCharges()
            return Self.response(
                .ok(["gpu_usd": .double(total.gpu), "storage_usd": .double(total.storage), "total_usd": .double(total.gpu + total.storage)])
            )
        }
        router.post("/emulator/finish-loading") { request, _ -> Response in
            guard let id = try await Self.controlBody(request)["instance"]?.intValue else {
                return Self.response(.failure(400, "emulator", "instance must be an id"))
            }
            await self.finishLoading(instance: id)
            return Self.response(.ok(["success": true]))
        }
        router.post("/emulator/log") { request, _ -> Response in
            let body = try await Self.controlBody(request)
            guard let id = body["instance"]?.intValue, let lines = body["lines"]?.arrayValue?.compactMap(\.stringValue) else {
                return Self.response(.failure(400, "emulator", "give instance and lines"))
            }
            await self.appendContainerLog(instance: id, lines)
            return Self.response(.ok(["success": true]))
        }
        router.get("/emulator/state") { _, _ -> Response in
            var instances: [JSONValue] = []
            for instance in await self.liveInstances {
                instances.append([
                    "id": .int(instance.id), "offer_id": .int(instance.offerID), "machine_id": .int(instance.machineID),
                    "label": instance.label.map(JSONValue.string) ?? nil, "fault": instance.fault.map { .string($0.rawValue) } ?? nil,
                    "reboots": .int(instance.reboots), "stopped": .bool(instance.stopped),
                    "container_running": .bool(await self.containerRunning(instance: instance.id)),
                ])
            }
            return Self.response(
                .ok([
                    "instances": .array(instances), "requests": .int(await self.requests.count), "creates": .int(await self.createdCount),
                ])
            )
        }
    }

    private static func controlBody(_ request: Request) async throws -> JSONValue {
        var request = request
        let buffer = try await request.collectBody(upTo: 1 << 20)
        return JSONValue.parse(Data(buffer.readableBytesView)) ?? [:]
    }
}
