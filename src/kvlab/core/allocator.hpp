#pragma once
// Keeps freed memory in the process instead of returning it to the kernel.
// Blocks allocate and free multi-MB buffers in parallel; with glibc's defaults
// every free munmaps/trims and every allocation page-faults anew, and the
// TLB shootdowns serialise the threads (measured: GEAR 7B layer 381 → 224 ms,
// KIVI 52 → 26 ms). Call once at start-up, before any threads exist.
namespace kvlab {
void tune_allocator();
}
