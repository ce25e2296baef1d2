#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Line-buffered even into a pipe, so that "listening on ..." reaches a supervising process at once.
setvbuf(stdout, nil, _IOLBF, 0)
await SwarmCtl.main()
