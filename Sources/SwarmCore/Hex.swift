extension Sequence<UInt8> {
    /// Lowercase hexadecimal, two digits a byte (digests, signatures). Written out by hand because `String(format:)`
    /// costs microseconds a byte, and digests are made on hot paths (every keyed request, every output).
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
