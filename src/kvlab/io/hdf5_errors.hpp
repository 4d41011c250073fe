#pragma once
// HDF5 error-stack handling. kvlab reports HDF5 failures as one-line
// kvlab::Error messages, so the library's automatic stack printing
// ("HDF5-DIAG: Error detected in ...") must be off.
#include <string>

namespace kvlab::io {

// Turn off HDF5's automatic error-stack printing for the default stack.
// Idempotent; called by main() and by DumpReader/DumpWriter constructors.
void silence_hdf5_errors();

// The innermost message on HDF5's current default error stack (e.g.
// "truncated file: eof = 1000, ..."), or "" when the stack is empty. Call it
// right after the failing HDF5 call, before any other HDF5 API call.
std::string last_hdf5_error();

}  // namespace kvlab::io
