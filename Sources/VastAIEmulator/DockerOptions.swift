/// A template's `env`, a docker-options string such as `-p 8080:8080 -e KEY="a value"`, as the dict the create
/// request carries (`"-p 8080:8080": "1"`, `"KEY": "a value"`); vast converts it the same way (vastai.md §1.8).
enum DockerOptions {
    static func parse(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        var words = tokens(text)[...]
        while let word = words.popFirst() {
            switch word {
            case "-e", "--env":
                guard let pair = words.popFirst() else { break }
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                result[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            case "-p", "--publish":
                if let port = words.popFirst() { result["-p \(port)"] = "1" }
            default:
                if word.hasPrefix("-"), let value = words.first, !value.hasPrefix("-") {
                    result[word] = value
                    words = words.dropFirst()
                }
            }
        }
        return result
    }

    /// Words split on blanks, with single and double quotes grouping (and removed), as a shell would.
    private static func tokens(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        var quote: Character?
        var inWord = false
        for character in text {
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
            } else if character == "\"" || character == "'" {
                quote = character
                inWord = true
            } else if character.isWhitespace {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }
}
