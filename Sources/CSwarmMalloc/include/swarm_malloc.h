#ifndef SWARM_MALLOC_H
#define SWARM_MALLOC_H

/// Fixes glibc's mmap threshold at `bytes` (which also stops glibc from raising it as large blocks are freed).
/// Returns 1 on success, 0 where the C library is not glibc.
int swarm_fix_mmap_threshold(int bytes);

#endif
