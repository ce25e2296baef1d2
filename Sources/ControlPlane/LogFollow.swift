/// Following a log that is only ever read as its last N lines (vast's `request_logs`, a ping's tail): each read
/// overlaps the one before, and only what comes after the overlap is new.
public enum LogFollow {
    /// The lines of `current` that `previous` did not end with. When nothing overlaps (more than a read's worth
    /// arrived in between, or the log was rotated), all of `current` is new.
    public static func newLines(previous: [String], current: [String]) -> ArraySlice<String> {
        guard !previous.isEmpty else { return current[...] }
        var overlap = min(previous.count, current.count)
        while overlap > 0 {
            if previous.suffix(overlap).elementsEqual(current.prefix(overlap)) { return current.dropFirst(overlap) }
            overlap -= 1
        }
        return current[...]
    }
}
