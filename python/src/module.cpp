// The `kvlab._kvlab` extension: a thin binding over the core the CLI runs
// (python/kvlab/__init__.py is the public face). kvlab::FileError becomes
// OSError and every other kvlab::Error ValueError, with kvlab's message.
#include "bindings.hpp"
#include "kvlab/core/allocator.hpp"
#include "kvlab/core/build_info.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/io/hdf5_errors.hpp"

namespace kvlab::python {

std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace kvlab::python

PYBIND11_MODULE(_kvlab, m) {
  namespace py = pybind11;
  m.doc() = "kvlab's compressors and replay (the binding; use the kvlab package)";
  // Registered translators are tried newest first: FileError before Error.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const kvlab::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const kvlab::FileError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    }
  });
  kvlab::io::silence_hdf5_errors();
  m.attr("__version__") = kvlab::build_info::version;
  m.attr("git_revision") = kvlab::build_info::git_revision();
  m.def("tune_allocator", &kvlab::tune_allocator,
        "Keep freed memory in the process (glibc mallopt), as the kvlab executable does at start-up: multi-MB "
        "buffers are then reused instead of unmapped and page-faulted anew (compress() on a 7B-shaped layer "
        "needs ~30% less CPU). Process-wide and not undone; call it once, early, if you want it.");
  kvlab::python::bind_attention_rule(m);
  kvlab::python::bind_registry(m);
  kvlab::python::bind_states(m);
  kvlab::python::bind_compress(m);
  kvlab::python::bind_run(m);
}
