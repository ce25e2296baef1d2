/// Object keys for outputs: `<endpoint>/<job id>/<file name>`, each part reduced to characters that are safe
/// in S3 keys, URLs and file names, so that no part can add a directory level or climb out with `..`.
public enum ObjectKey {
    public static func output(endpoint: String, jobID: String, fileName: String) -> String {
        [sanitize(endpoint, fallback: "endpoint"), sanitize(jobID, fallback: "job"), sanitize(fileName, fallback: "output")]
            .joined(separator: "/")
    }

    /// An input a client uploaded (an `init_image`): `<endpoint>/_inputs/<file name>`. No job id sanitizes to
    /// `_inputs` (leading underscores are dropped), so inputs never mix with a job's outputs.
    public static func input(endpoint: String, fileName: String) -> String {
        [sanitize(endpoint, fallback: "endpoint"), "_inputs", sanitize(fileName, fallback: "input")].joined(separator: "/")
    }

    /// Letters and digits (any script), `.`, `-` and `_` are kept; every other run of characters becomes one `_`.
    /// Leading dots and underscores are dropped (no hidden files, no `..`) and the result is capped at 200 UTF-8 bytes,
    /// keeping the extension.
    public static func sanitize(_ part: String, fallback: String) -> String {
        var out = ""
        var pendingUnderscore = false
        for character in part {
            if character.isLetter || character.isNumber || character == "." || character == "-" || character == "_" {
                if pendingUnderscore && !out.isEmpty { out.append("_") }
                pendingUnderscore = false
                out.append(character)
            } else {
                pendingUnderscore = true
            }
        }
        out = String(out.drop(while: { $0 == "." || $0 == "_" }))
        if out.utf8.count > 200 {
            let dot = out.lastIndex(of: ".")
            let ext = dot.map { String(out[$0...]) }.flatMap { $0.utf8.count <= 16 ? $0 : nil } ?? ""
            var stem = String(out.dropLast(ext.count))
            while stem.utf8.count + ext.utf8.count > 200 { stem.removeLast() }
            out = stem + ext
        }
        return out.isEmpty ? fallback : out
    }
}
