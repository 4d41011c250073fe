#pragma once
// The parts of the `kvlab._kvlab` extension, each adding its functions and
// classes to the module (module.cpp calls them in order).
#include <pybind11/pybind11.h>

#include <mutex>

namespace kvlab::python {

namespace py = pybind11;

void bind_registry(py::module_& m);  // methods(), presets(), canonical()
void bind_states(py::module_& m);    // Compressor, State
void bind_compress(py::module_& m);  // compress()
void bind_run(py::module_& m);       // run()
void bind_attention_rule(py::module_& m);  // AttentionRule

// HDF5 (as Debian builds it) is not thread-safe: every call that opens or
// reads a file holds this lock, so Python threads may call run() at once.
std::mutex& hdf5_mutex();

}  // namespace kvlab::python
