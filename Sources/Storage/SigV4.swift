import Crypto
import Foundation
import SwarmCore

/// Access key, secret and optional session token for an S3-compatible service.
public struct S3Credentials: Sendable, Hashable {
    public var accessKeyID: String
    public var secretAccessKey: Secret
    /// Temporary credentials (STS) come with a token that must be sent with every request.
    public var sessionToken: Secret?

    public init(accessKeyID: String, secretAccessKey: Secret, sessionToken: Secret? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

/// One HTTP request as SigV4 sees it. Path and query are raw (unencoded); the signer encodes them exactly as S3 does.
public struct SigV4Request: Sendable {
    public var method: String
    public var scheme: String
    /// Host name, with `:port` when the port is not the scheme's default (it is part of the signed `host` value).
    public var host: String
    /// Raw path starting with `/`, e.g. `/bucket/dir/a b.png`; each segment is percent-encoded, `/` is kept.
    public var path: String
    /// Raw query items in the order they appear in the URL (operation parameters before the auth ones).
    public var query: [(name: String, value: String)]
    /// Headers to sign besides `host` (and besides the `x-amz-*` ones the signer adds itself).
    public var headers: [(name: String, value: String)]

    public init(
        method: String,
        scheme: String,
        host: String,
        path: String,
        query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = []
    ) {
        self.method = method
        self.scheme = scheme
        self.host = host
        self.path = path
        self.query = query
        self.headers = headers
    }

    /// The URL this request goes to, with the path and query encoded the way they are signed.
    public var url: String {
        var url = "\(scheme)://\(host)\(SigV4.encodePath(path))"
        if !query.isEmpty { url += "?" + SigV4.queryString(query) }
        return url
    }
}

/// AWS Signature Version 4 for S3: query-string presigning and Authorization-header signing.
public struct SigV4Signer: Sendable {
    public var credentials: S3Credentials
    public var region: String
    public var service: String

    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// A URL that performs `request` without credentials until `expires` seconds after `date`.
    /// Headers in `request.headers` (e.g. `content-type`) are signed, so the client must send them verbatim.
    public func presign(_ request: SigV4Request, expires: Int, date: Date) -> String {
        let stamp = SigV4Timestamp(date)
        var headers = request.headers
        headers.append(("host", request.host))
        let signed = SigV4.canonicalHeaders(headers)
        // Order as botocore writes it: operation parameters, then the auth parameters, then the signature.
        var query = request.query
        query.append(("X-Amz-Algorithm", SigV4.algorithm))
        query.append(("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope(stamp))"))
        query.append(("X-Amz-Date", stamp.dateTime))
        query.append(("X-Amz-Expires", String(expires)))
        query.append(("X-Amz-SignedHeaders", signed.names))
        if let token = credentials.sessionToken { query.append(("X-Amz-Security-Token", token.value)) }
        let canonical = [
            request.method.uppercased(), SigV4.encodePath(request.path), SigV4.canonicalQuery(query),
            signed.block, signed.names, SigV4.unsignedPayload,
        ].joined(separator: "\n")
        query.append(("X-Amz-Signature", signature(canonicalRequest: canonical, stamp: stamp)))
        var unsigned = request
        unsigned.query = query
        return unsigned.url
    }

    /// The headers to add to `request` so S3 accepts it: `x-amz-date`, `x-amz-content-sha256`,
    /// `x-amz-security-token` when there is a session token, and `Authorization`.
    /// `payloadSHA256` is the lowercase hex SHA-256 of the body (that of an empty body for none).
    public func sign(_ request: SigV4Request, payloadSHA256: String, date: Date) -> [(name: String, value: String)] {
        let stamp = SigV4Timestamp(date)
        var added: [(name: String, value: String)] = [
            ("x-amz-date", stamp.dateTime), ("x-amz-content-sha256", payloadSHA256),
        ]
        if let token = credentials.sessionToken { added.append(("x-amz-security-token", token.value)) }
        let signed = SigV4.canonicalHeaders(request.headers + added + [("host", request.host)])
        let canonical = [
            request.method.uppercased(), SigV4.encodePath(request.path), SigV4.canonicalQuery(request.query),
            signed.block, signed.names, payloadSHA256,
        ].joined(separator: "\n")
        let signature = signature(canonicalRequest: canonical, stamp: stamp)
        added.append(
            (
                "Authorization",
                "\(SigV4.algorithm) Credential=\(credentials.accessKeyID)/\(scope(stamp)), "
                    + "SignedHeaders=\(signed.names), Signature=\(signature)"
            )
        )
        return added
    }

    private func scope(_ stamp: SigV4Timestamp) -> String {
        "\(stamp.date)/\(region)/\(service)/aws4_request"
    }

    private func signature(canonicalRequest: String, stamp: SigV4Timestamp) -> String {
        let stringToSign = [
            SigV4.algorithm, stamp.dateTime, scope(stamp), SHA256.hash(data: Data(canonicalRequest.utf8)).hexString,
        ].joined(separator: "\n")
        var key = SymmetricKey(data: Data("AWS4\(credentials.secretAccessKey.value)".utf8))
        for part in [stamp.date, region, service, "aws4_request"] {
            key = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key))
        }
        return HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key).hexString
    }
}

/// The encoding rules SigV4 and S3 agree on.
public enum SigV4 {
    static let algorithm = "AWS4-HMAC-SHA256"
    static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// SHA-256 of the empty body.
    public static let emptyPayloadSHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// RFC 3986 percent-encoding of UTF-8 bytes: only `A-Z a-z 0-9 - _ . ~` stay as they are (so a space
    /// is `%20`, never `+`), plus `/` when `keepSlash` (object keys keep their slashes).
    public static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += "%" + hexDigit(byte >> 4) + hexDigit(byte & 0x0F)
            }
        }
        return out
    }

    /// S3 signs the path encoded once and never normalized (`a//b` and `x/./y` stay as they are).
    public static func encodePath(_ path: String) -> String {
        encode(path, keepSlash: true)
    }

    /// Query items as they appear in the URL: encoded, in the given order; an empty value is written as `name`.
    static func queryString(_ items: [(name: String, value: String)]) -> String {
        items.map { $0.value.isEmpty ? encode($0.name) : "\(encode($0.name))=\(encode($0.value))" }
            .joined(separator: "&")
    }

    /// Encoded `name=value` pairs sorted by name, then value (byte order of the encoded text).
    static func canonicalQuery(_ items: [(name: String, value: String)]) -> String {
        items.map { (encode($0.name), encode($0.value)) }
            .sorted { $0.0 == $1.0 ? Array($0.1.utf8).lexicographicallyPrecedes($1.1.utf8) : Array($0.0.utf8).lexicographicallyPrecedes($1.0.utf8) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// Lower-case names, sorted; values trimmed with inner runs of spaces collapsed; repeated names joined by `,`.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (block: String, names: String) {
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            let collapsed = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
            merged[name.lowercased(), default: []].append(collapsed)
        }
        let names = merged.keys.sorted { Array($0.utf8).lexicographicallyPrecedes($1.utf8) }
        let block = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        return (block, names.joined(separator: ";"))
    }

    /// An upper-case hex digit, as percent-encoding writes them.
    private static func hexDigit(_ value: UInt8) -> String {
        String(UnicodeScalar((value < 10 ? 48 : 55) + value))
    }
}

/// `20130524T000000Z` and `20130524` for a date, in UTC, without a DateFormatter (and its locale pitfalls).
struct SigV4Timestamp {
    let date: String
    let dateTime: String

    init(_ instant: Date) {
        let seconds = Int64(instant.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm, proleptic Gregorian).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        date = pad(year, 4) + pad(month, 2) + pad(day, 2)
        dateTime = date + "T" + pad(secondOfDay / 3_600, 2) + pad(secondOfDay % 3_600 / 60, 2) + pad(secondOfDay % 60, 2) + "Z"
    }
}
