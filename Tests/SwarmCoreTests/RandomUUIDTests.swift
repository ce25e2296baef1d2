import Foundation
import SwarmCore
import Testing

@Suite struct RandomUUIDTests {
    @Test func isALowerCaseVersion4UUIDThatFoundationReadsBack() throws {
        for _ in 0..<200 {
            let text = randomUUIDString()
            #expect(text.count == 36)
            #expect(text == text.lowercased())
            let parsed = try #require(UUID(uuidString: text), "\(text) is not a UUID")
            #expect(parsed.uuidString.lowercased() == text)
            let bytes = withUnsafeBytes(of: parsed.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 4, "version nibble of \(text)")
            #expect(bytes[8] >> 6 == 0b10, "variant bits of \(text)")
        }
    }

    @Test func doesNotRepeat() {
        let ids = (0..<10_000).map { _ in randomUUIDString() }
        #expect(Set(ids).count == ids.count)
    }
}
