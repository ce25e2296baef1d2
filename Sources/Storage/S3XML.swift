import Foundation

/// Just enough XML for S3's replies: the text of the first element with a given name, whatever its namespace
/// prefix or attributes. S3 responses are flat and small; a full parser would buy nothing here.
enum S3XML {
    static func firstText(of element: String, in xml: String) -> String? {
        var rest = xml[...]
        while let open = rest.range(of: "<") {
            rest = rest[open.upperBound...]
            guard let close = rest.firstIndex(of: ">") else { return nil }
            var tag = rest[..<close]
            rest = rest[rest.index(after: close)...]
            if tag.hasPrefix("/") || tag.hasPrefix("?") || tag.hasPrefix("!") || tag.hasSuffix("/") { continue }
            if let space = tag.firstIndex(where: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }) { tag = tag[..<space] }
            let name = tag.split(separator: ":").last.map(String.init) ?? ""
            guard name == element else { continue }
            guard let end = rest.range(of: "</") else { return nil }
            return unescape(String(rest[..<end.lowerBound]))
        }
        return nil
    }

    /// Escapes element text. Quotes stay as they are, as in every SDK's request bodies (ETags are quoted).
    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default: out.append(character)
            }
        }
        return out
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = text[...]
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            rest = rest[amp...]
            guard let semicolon = rest.firstIndex(of: ";"), rest.distance(from: rest.startIndex, to: semicolon) <= 10 else {
                out.append("&")
                rest = rest.dropFirst()
                continue
            }
            let entity = rest[rest.index(after: rest.startIndex)..<semicolon]
            let named: [Substring: String] = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'"]
            if let replacement = named[entity] {
                out += replacement
            } else if entity.hasPrefix("#"),
                let scalar = entity.hasPrefix("#x")
                    ? UInt32(entity.dropFirst(2), radix: 16) : UInt32(entity.dropFirst()), let unicode = Unicode.Scalar(scalar)
            {
                out.unicodeScalars.append(unicode)
            } else {
                out += rest[...semicolon]
            }
            rest = rest[rest.index(after: semicolon)...]
        }
        return out + rest
    }
}
