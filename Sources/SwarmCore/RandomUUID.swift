import Foundation

/// A random (version 4) UUID in lower-case text, drawn from the system generator (getrandom): Foundation's `UUID()`
/// on Linux opens, reads and closes /dev/urandom each time, three system calls on every job submitted.
public func randomUUIDString() -> String {
    var bytes = randomBytes()
    bytes[6] = (bytes[6] & 0x0F) | 0x40  // version 4
    bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
    return uuidText(bytes)
}

/// A time-ordered (version 7, RFC 9562) UUID in lower-case text: 48 bits of Unix milliseconds, then 74 random bits.
public func timeOrderedUUIDString(now: Date = Date()) -> String {
    var bytes = randomBytes()
    let milliseconds = UInt64(max(0, now.timeIntervalSince1970 * 1000))
    for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - index))) }
    bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
    bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
    return uuidText(bytes)
}

/// 16 bytes from the system generator.
private func randomBytes() -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return withUnsafeBytes(of: (generator.next() as UInt64, generator.next() as UInt64)) { Array($0) }
}

/// 8-4-4-4-12 hex digits: a dash before bytes 4, 6, 8 and 10.
private func uuidText(_ bytes: [UInt8]) -> String {
    [0..<4, 4..<6, 6..<8, 8..<10, 10..<16].map { bytes[$0].hexString }.joined(separator: "-")
}
