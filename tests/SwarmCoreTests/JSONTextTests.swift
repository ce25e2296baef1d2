import Foundation
import SwarmCore
import Testing

@Suite("JSON text")
struct JSONTextTests {
    /// Foundation's decoder through `JSONValue`'s Codable conformance is the reference the fast parser must agree with.
    static let documents = [
        #"{"prompt":"a cat","steps":20,"cfg":7.5,"seed":-1,"flags":[true,false,null],"nested":{"a":{"b":[1,[2,[3]]]}}}"#,
        #"[0, -0, 1e3, 2.5E-3, 1000.0, 1.5e1, 12345678901234, -9223372036854775808, 9223372036854775807, 18446744073709551616]"#,
        #"  "escapes: \" \\ \/ \b \f \n \r \t \u00e9 \u2028 \ud83d\ude00"  "#,
        #""unicode as is: é 漢字 😀""#,
        #"{"dup":1,"dup":2}"#,
        "[]", "{}", "null", "true", "false", "0", "\"\"", "[[],{},[{}]]",
        #"{"url":"https://example.com/a/b?c=d"}"#,
    ]

    @Test("parses every document as Foundation's decoder does", arguments: documents)
    func agreesWithFoundation(_ text: String) throws {
        let reference = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(try JSONValue(parsing: Data(text.utf8)) == reference)
    }

    @Test("written text reads back as the same value, in Foundation too", arguments: documents)
    func roundTrips(_ text: String) throws {
        let value = try JSONValue(parsing: Data(text.utf8))
        let written = value.jsonString()
        #expect(try JSONValue(parsing: Data(written.utf8)) == value)
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(written.utf8)) == value)
    }

    @Test func wholeNumbersAreIntegersAndFractionsStayDoubles() throws {
        #expect(try JSONValue(parsing: Data("20".utf8)) == .int(20))
        #expect(try JSONValue(parsing: Data("20.0".utf8)) == .int(20))
        #expect(try JSONValue(parsing: Data("1e2".utf8)) == .int(100))
        #expect(try JSONValue(parsing: Data("20.5".utf8)) == .double(20.5))
        #expect(try JSONValue(parsing: Data("99999999999999999999".utf8)) == .double(1e20))
    }

    @Test func theFirstOfRepeatedNamesWins() throws {
        #expect(try JSONValue(parsing: Data(#"{"a":1,"b":2,"a":3}"#.utf8)) == ["a": 1, "b": 2])
    }

    @Test func writesCompactSortedTextWithoutEscapingSlashes() {
        let value: JSONValue = ["b": [1, 2.5, 3.0], "a": "x/y \"q\"\n\u{01}", "c": nil, "d": true]
        #expect(value.jsonString() == #"{"a":"x/y \"q\"\n\u0001","b":[1,2.5,3],"c":null,"d":true}"#)
        #expect(JSONValue.double(.infinity).jsonString() == "null")
        #expect(JSONValue.double(1e-7).jsonString() == "1e-07")
    }

    @Test(
        "refuses what is not JSON, saying where",
        arguments: [
            ("", 0), ("{", 1), ("[1,]", 3), (#"{"a" 1}"#, 5), (#"{"a":1,}"#, 7), ("01", 1), ("-", 1), ("1.", 2), ("1e", 2),
            ("tru", 0), ("nul", 0), (#""abc"#, 4), ("\"a\u{01}\"", 2), (#""\x""#, 2), (#""\u12""#, 3), (#""\ud800""#, 7),
            (#""\udc00""#, 7), ("[1] 2", 4), ("1e999", 0), ("{1:2}", 1), ("'a'", 0),
        ]
    )
    func refusesMalformedText(_ text: String, _ offset: Int) {
        do {
            let value = try JSONValue(parsing: Data(text.utf8))
            Issue.record("\(text) parsed as \(value)")
        } catch {
            #expect(error.offset == offset, "\(text): \(error)")
        }
    }

    @Test func refusesInvalidUTF8() {
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: Data([0x22, 0xC3, 0x28, 0x22])) }
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: Data([0x22, 0x5C, 0x6E, 0xFF, 0x22])) }
    }

    @Test func refusesNestingBeyondTheLimitWithoutCrashing() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: Data(deep.utf8)) }
        let allowed = String(repeating: "[", count: JSONValue.maximumDepth) + String(repeating: "]", count: JSONValue.maximumDepth)
        #expect(try JSONValue(parsing: Data(allowed.utf8)).arrayValue?.count == 1)
    }
}
