#include "kvlab/core/allocator.hpp"

#include <malloc.h>

namespace kvlab {

void tune_allocator() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // serve blocks below 32 MB from the heap (glibc's maximum)
  mallopt(M_TRIM_THRESHOLD, 1 << 30);   // and keep up to 1 GB of freed memory for reuse
}

}  // namespace kvlab
