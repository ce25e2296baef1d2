import ArgumentParser

struct SwarmCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarmctl",
        abstract: "Run and use a RunPod-compatible job queue for SwarmUI workers.",
        discussion: """
            Client commands talk to the server at SWARM_URL (default http://127.0.0.1:8288) with the client key in \
            SWARM_API_KEY. 'keys' opens the database directly.
            """,
        subcommands: [
            Serve.self, Submit.self, Status.self, Download.self, Jobs.self, Cancel.self, Costs.self, Keys.self, Offers.self, InstanceCommand.self,
        ]
    )
}

extension SwarmCtl {
    /// Parses the command line and runs the command. Called from main.swift, where top-level code would resolve
    /// `main()` to the synchronous overload, which refuses async subcommands.
    static func start() async {
        await main()
    }
}
