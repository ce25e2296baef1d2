import Logging

public enum SwarmLogging {
    /// Logs to standard output (what `docker logs` and vast's `request_logs` collect) at `level`, once per process.
    public static func bootstrap(level: Logger.Level, label: String) -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardOutput(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}
