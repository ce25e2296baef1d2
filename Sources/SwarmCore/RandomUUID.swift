/// A random (version 4) UUID in lower-case text, drawn from the system generator (getrandom): Foundation's `UUID()`
/// on Linux opens, reads and closes /dev/urandom each time, three system calls on every job submitted.
public func randomUUIDString() -> String {
    var generator = SystemRandomNumberGenerator()
    var bytes = withUnsafeBytes(of: (generator.next() as UInt64, generator.next() as UInt64)) { Array($0) }
    bytes[6] = (bytes[6] & 0x0F) | 0x40  // version 4
    bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
    // 8-4-4-4-12 hex digits: a dash before bytes 4, 6, 8 and 10.
    return [0..<4, 4..<6, 6..<8, 8..<10, 10..<16].map { bytes[$0].hexString }.joined(separator: "-")
}
