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

    @Test func timeOrderedIsAVersion7UUIDCarryingItsMillisecond() throws {
        let now = Date(timeIntervalSince1970: 1_764_684_000.123)
        for _ in 0..<200 {
            let text = timeOrderedUUIDString(now: now)
            #expect(text == text.lowercased())
            let parsed = try #require(UUID(uuidString: text), "\(text) is not a UUID")
            let bytes = withUnsafeBytes(of: parsed.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 7, "version nibble of \(text)")
            #expect(bytes[8] >> 6 == 0b10, "variant bits of \(text)")
            let milliseconds = bytes[0..<6].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            #expect(milliseconds == 1_764_684_000_123, "time of \(text)")
        }
    }

    @Test func timeOrderedSortsByTimeAndDoesNotRepeatWithinAMillisecond() {
        let start = Date(timeIntervalSince1970: 1_764_684_000)
        // Half a millisecond past each, so that rounding cannot move one into the millisecond before.
        let ids = (0..<1_000).map { timeOrderedUUIDString(now: start.addingTimeInterval((Double($0) + 0.5) / 1000)) }
        // Text order is time order, which is what keeps an index of job ids appending at its end.
        let outOfOrder = zip(ids, ids.dropFirst()).filter { $0 >= $1 }
        #expect(outOfOrder.isEmpty, "\(outOfOrder.prefix(3))")
        let sameMillisecond = (0..<10_000).map { _ in timeOrderedUUIDString(now: start) }
        #expect(Set(sameMillisecond).count == sameMillisecond.count)
    }
}
