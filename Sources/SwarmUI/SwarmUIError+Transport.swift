import AsyncHTTPClient
import NIOCore
import NIOPosix
import WSClient

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension SwarmUIError {
    /// Classifies a networking error from AsyncHTTPClient, NIO or the WebSocket client.
    static func transport(_ error: any Error, route: String) -> SwarmUIError {
        if let error = error as? SwarmUIError { return error }
        if error is CancellationError { return SwarmUIError(.cancelled, route: route, detail: "cancelled") }
        if error is NIOConnectionError {
            return SwarmUIError(.unreachable, route: route, detail: "connection refused")
        }
        if let error = error as? IOError, error.errnoCode == ECONNREFUSED {
            return SwarmUIError(.unreachable, route: route, detail: "connection refused")
        }
        if let error = error as? ChannelError {
            switch error {
            case .connectTimeout:
                return SwarmUIError(.unreachable, route: route, detail: "connect timed out")
            default:
                return SwarmUIError(.connectionClosed, route: route, detail: "\(error)")
            }
        }
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout:
                return SwarmUIError(.unreachable, route: route, detail: "connect timed out")
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return SwarmUIError(.timeout, route: route, detail: "\(error)")
            case .cancelled:
                return SwarmUIError(.cancelled, route: route, detail: "cancelled")
            default:
                return SwarmUIError(.connectionClosed, route: route, detail: "\(error)")
            }
        }
        if let error = error as? WebSocketClientError {
            switch error {
            case .serverSentMessageTooLarge:
                return SwarmUIError(.badResponse, route: route, detail: "a WebSocket message exceeded the size limit (raise maxMessageBytes)")
            default:
                return SwarmUIError(.connectionClosed, route: route, detail: "\(error)")
            }
        }
        return SwarmUIError(.connectionClosed, route: route, detail: "\(error)")
    }
}
