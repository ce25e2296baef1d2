import Foundation

/// HTML text built by string interpolation in which every interpolated value is escaped unless it is already `HTML`:
/// user-supplied text (prompts, errors, log lines, ids) cannot open a tag or leave an attribute.
public struct HTML: Sendable, Equatable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public private(set) var text: String

    public init(unsafe text: String) { self.text = text }
    public init(stringLiteral value: String) { self.text = value }
    public init(stringInterpolation: Interpolation) { self.text = stringInterpolation.text }
    public var description: String { text }

    public struct Interpolation: StringInterpolationProtocol {
        var text = ""
        public init(literalCapacity: Int, interpolationCount: Int) { text.reserveCapacity(literalCapacity * 2) }
        public mutating func appendLiteral(_ literal: String) { text += literal }
        public mutating func appendInterpolation(_ html: HTML) { text += html.text }
        public mutating func appendInterpolation(_ value: some CustomStringConvertible) { text += HTML.escape(value.description) }
        public mutating func appendInterpolation(_ parts: [HTML]) { for part in parts { text += part.text } }
    }

    /// Escapes `& < > " '`: safe in text and in quoted attribute values.
    public static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return escaped
    }

    static func join(_ parts: [HTML], separator: HTML = "") -> HTML {
        HTML(unsafe: parts.map(\.text).joined(separator: separator.text))
    }
}

/// Dollar and time formats of the page.
enum WebFormat {
    static func dollars(_ value: Double) -> String {
        value.magnitude < 10 ? String(format: "$%.4f", value) : String(format: "$%.2f", value)
    }

    static func dollarsShort(_ value: Double) -> String { String(format: "$%.2f", value) }

    static func time(_ date: Date?) -> String {
        guard let date else { return "—" }
        return date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: false).timeSeparator(.colon))
            + " UTC"
    }

    static func milliseconds(_ value: Int64?) -> String {
        guard let value else { return "—" }
        return value < 10_000 ? "\(value) ms" : String(format: "%.1f s", Double(value) / 1000)
    }

    static func day(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash))
    }

}
