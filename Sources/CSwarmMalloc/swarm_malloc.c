#include <stdlib.h>
#include "swarm_malloc.h"

#if defined(__GLIBC__)
#include <malloc.h>

int swarm_fix_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
#else
int swarm_fix_mmap_threshold(int bytes) {
    (void)bytes;
    return 0;
}
#endif
