import ArgumentParser
import ControlPlane
import Foundation
import JobStore
import Logging
import SwarmCore

/// API keys kept in the database (hashed): create, list, revoke. Talks to the database directly, not to a server.
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage API keys stored (hashed) in the database.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct StoreOptions: ParsableArguments {
        @Option(help: "Directory of the SQLite database.") var dataDir = "./.swarm"
        @Option(help: "Database URL: postgres://... or a SQLite file (or SWARM_DATABASE_URL).") var database: String?

        func withStore<T: Sendable>(_ body: @Sendable (any ControlPlaneStore) async throws -> T) async throws -> T {
            let location = try SharedSettings.database(dataDirectory: dataDir, flag: database, environment: ProcessInfo.processInfo.environment)
            return try await location.withStore(logger: Logger(label: "swarmctl.keys"), body)
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print it once.")
        @OptionGroup var storage: StoreOptions
        @Option(help: "client (submit and read jobs) or worker (take and report jobs).") var scope: String
        @Option(help: "A note to recognise the key by.") var label: String?

        func run() async throws {
            guard let scope = KeyScope(rawValue: scope) else { throw ValidationError("--scope must be client or worker") }
            let key = APIKey.generate(scope: scope)
            let id = String(UUID().uuidString.lowercased().prefix(8))
            let stored = StoredKey(id: id, scope: scope, hash: APIKey.hash(key.value), label: label, createdAt: Date())
            try await storage.withStore { try await $0.insertKey(stored) }
            printError("created \(scope.rawValue) key \(id); it is shown once, store it now:")
            print(key.value)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never the keys themselves).")
        @OptionGroup var storage: StoreOptions

        func run() async throws {
            for key in try await storage.withStore({ try await $0.keys() }) {
                let state = key.revokedAt.map { "revoked \($0.formatted(.iso8601))" } ?? "active"
                print("\(key.id)  \(key.scope.rawValue)  \(state)  created \(key.createdAt.formatted(.iso8601))  \(key.label ?? "")")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by id; servers stop accepting it within seconds.")
        @OptionGroup var storage: StoreOptions
        @Argument(help: "The key id from 'keys list'.") var id: String

        func run() async throws {
            let id = self.id
            guard try await storage.withStore({ try await $0.revokeKey(id: id, now: Date()) }) else { throw ValidationError("no key with id \(id)") }
            print("revoked \(id)")
        }
    }
}
