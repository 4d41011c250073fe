// run(): what `kvlab run -d DUMP -c SPEC ... --csv DIR` computes, as tables.
// The same checks before any work (dump, layers, specs, compatibility), the
// same jobs and identities, the one job runner (run_jobs), and the columns of
// the declared result tables (report/result_fields.hpp) as typed cells, so
// every number equals the CLI's CSV to the last digit. The Python side
// (kvlab/_tables.py) turns the columns into DataFrames.
#include <omp.h>
#include <pybind11/stl.h>

#include <algorithm>

#include "bindings.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/replay/replay_dump.hpp"
#include "kvlab/report/job_identity.hpp"
#include "kvlab/report/result_fields.hpp"
#include "kvlab/runner/job_runner.hpp"

namespace kvlab::python {

namespace {

const std::vector<std::string> kTables = {"summary", "layers", "steps", "timing"};

struct RunOutput {
  std::vector<JobRecord> records;
  TableLayout layout;
};

RunOutput run_jobs_on(const std::string& dump, const std::vector<std::string>& specs, std::vector<int> layers,
                      int eval_every, int max_steps, bool attention, std::uint64_t seed, int threads) {
  std::lock_guard<std::mutex> hdf5(hdf5_mutex());
  const Registry& registry = Registry::global();
  const DumpReader reader(dump);
  const DumpInfo& info = reader.info();

  ReplayOptions opts;
  std::sort(layers.begin(), layers.end());  // as the CLI's --layers list
  layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  opts.layers = layers;
  opts.eval_every = eval_every;
  opts.max_steps = max_steps;
  opts.seed = seed;
  opts.attention = info.has_queries && attention;
  selected_layers(info, opts);  // a bad layer fails before any work

  std::vector<Job> jobs;
  std::vector<const MethodInfo*> methods;
  for (const std::string& text : specs) {
    const ResolvedSpec spec = registry.resolve(text);
    check_compatible(info, *registry.build(spec), opts);  // constraints between parameters fail here too
    methods.push_back(spec.method);
    jobs.push_back(Job{dump, spec, opts, make_identity(spec, dump, dump, opts)});
  }
  RunnerOptions ro;
  ro.threads = threads;
  CollectingSink sink;
  run_jobs(jobs, ro, sink);
  for (const JobRecord& r : sink.records) {
    if (r.ok()) continue;
    if (r.file_error) throw FileError(r.error);
    throw Error(r.error);
  }
  return RunOutput{std::move(sink.records), TableLayout{parameter_columns(methods)}};
}

py::object cell(const FieldValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return py::str(*s);
  if (const auto* i = std::get_if<std::int64_t>(&v)) return py::int_(*i);
  if (const auto* d = std::get_if<double>(&v)) return py::float_(*d);
  return py::none();
}

// {"columns": [names], "types": ["string" | "int" | "float"], "data": [one list per column]}
py::dict table_columns(const std::string& name, const RunOutput& out) {
  const ResultTable& table = result_table(name + ".csv");
  const std::vector<Field> fields = table.fields(out.layout);
  std::vector<py::list> data(fields.size());
  for (const JobRecord& record : out.records)
    for (const std::vector<FieldValue>& row : table_values(table, out.layout, record))
      for (std::size_t c = 0; c < fields.size(); ++c) data[c].append(cell(row[c]));
  py::list names, types, columns;
  for (std::size_t c = 0; c < fields.size(); ++c) {
    names.append(fields[c].name);
    types.append(field_type_name(fields[c].type));
    columns.append(data[c]);
  }
  py::dict d;
  d["columns"] = names;
  d["types"] = types;
  d["data"] = columns;
  return d;
}

py::dict run(py::object dump, const std::vector<std::string>& specs, std::optional<std::vector<int>> layers,
             std::optional<int> eval_every, std::optional<int> threads, std::uint64_t seed,
             std::optional<int> max_steps, bool attention, const std::vector<std::string>& tables) {
  const std::string path = py::str(py::module_::import("os").attr("fsdecode")(dump));  // str, bytes or PathLike
  if (specs.empty()) fail("run: no compressor spec given (specs=['kivi-2bit', ...])");
  for (const std::string& t : tables)
    if (std::find(kTables.begin(), kTables.end(), t) == kTables.end())
      fail("run: unknown table '{}' (expected some of: summary, layers, steps, timing)", t);
  for (int l : layers.value_or(std::vector<int>{}))
    if (l < 0) fail("layers: {} is not a non-negative integer", l);
  if (eval_every.value_or(1) < 0) fail("eval_every must be >= 0 (0: after prefill and at the last step), found {}", *eval_every);
  if (max_steps.value_or(0) < 0) fail("max_steps must be >= 0, found {}", *max_steps);
  const int nthreads = threads.value_or(omp_get_max_threads());
  if (nthreads < 1) fail("threads must be positive, found {}", nthreads);

  RunOutput out;
  {
    py::gil_scoped_release release;  // and only then the HDF5 lock: never wait for it holding the GIL
    out = run_jobs_on(path, specs, layers.value_or(std::vector<int>{}), eval_every.value_or(1), max_steps.value_or(-1),
                      attention, seed, nthreads);
  }
  py::dict result;
  for (const std::string& t : tables) result[py::str(t)] = table_columns(t, out);
  return result;
}

}  // namespace

void bind_run(py::module_& m) {
  using namespace py::literals;
  m.def("run", &run, "dump"_a, "specs"_a, "layers"_a = py::none(), "eval_every"_a = py::none(),
        "threads"_a = py::none(), "seed"_a = 0, py::kw_only(), "max_steps"_a = py::none(), "attention"_a = true,
        "tables"_a = std::vector<std::string>{"summary"});
}

}  // namespace kvlab::python
