import Foundation
import SwarmCore

/// Read access to one JSON object from vast.ai, as loose as the API is (vastai.md §6.1): a number may arrive as an
/// int, a float or a numeric string; any field may be null or missing; booleans sometimes come as 0/1.
/// Reading a field never throws: a value of the wrong shape reads as nil, like a missing one.
struct LooseFields: Sendable {
    let object: [String: JSONValue]

    init(_ object: [String: JSONValue]) { self.object = object }

    func double(_ key: String) -> Double? {
        switch object[key] {
        case .int(let value)?: Double(value)
        case .double(let value)?: value
        case .string(let text)?: Double(text.trimmingCharacters(in: .whitespaces))
        default: nil
        }
    }

    /// An integer, also from a whole float (`31234567.0`) or a numeric string.
    func int(_ key: String) -> Int? {
        guard let value = double(key), value.rounded() == value, abs(value) < 9.0e15 else { return nil }
        return Int(value)
    }

    /// Text; a number becomes its decimal form, since ids and versions flip between the two.
    func string(_ key: String) -> String? {
        switch object[key] {
        case .string(let text)?: text
        case .int(let value)?: String(value)
        case .double(let value)?: String(value)
        default: nil
        }
    }

    func bool(_ key: String) -> Bool? {
        switch object[key] {
        case .bool(let value)?: value
        case .int(let value)?: value != 0
        case .string(let text)?:
            switch text.lowercased() {
            case "true", "1", "yes": true
            case "false", "0", "no": false
            default: nil
            }
        default: nil
        }
    }
}
