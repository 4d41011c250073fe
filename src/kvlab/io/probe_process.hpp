#pragma once
// Reading an untrusted file first in a throw-away child process.
//
// HDF5 1.10.8 trusts much of a file's metadata (object headers, attribute
// messages, B-tree nodes, heap collections): some corrupt bytes crash it with
// SIGSEGV or make it read past its buffers, and kvlab cannot check all of them
// before HDF5 looks. So a reader runs its whole validation once in a forked
// child (the "probe"): if the child dies, the parent reports one line naming
// the file and what was being read, instead of dying itself; if the child
// finishes (valid file or a clean kvlab::Error), the parent does the same
// work for real, knowing it does not crash.
#include <chrono>
#include <functional>
#include <string>

namespace kvlab::io {

// Runs `probe` in a forked child and waits for it. Returns when the child
// finished, whether `probe` returned or threw. Throws a kvlab::Error
//   "<file>: corrupt file: reading <what> crashed (signal 11, Segmentation fault)"
// when the child was killed by a signal or exited abnormally, and
//   "<file>: corrupt file: reading <what> did not finish within 60 s"
// when it ran past the timeout (then it is killed). <what> is the last
// note_reading() the child made. When probing is off, or fork() fails, it
// returns at once and the caller reads in-process.
void probe_in_child(const std::string& file, const std::function<void()>& probe);

// Names what the code is about to read ("root attribute 'format'",
// "/layers/3/keys"), for the crash message. Cheap: copies into a fixed buffer.
void note_reading(const std::string& what);

// Probing is on by default. Off: probe_in_child returns at once (for fuzzing
// kvlab's own code in-process).
void set_probing(bool on);
bool probing();

// How long a probe may run (default 60 s).
void set_probe_timeout(std::chrono::milliseconds timeout);

}  // namespace kvlab::io
