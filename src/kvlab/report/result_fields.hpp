#pragma once
// Every column of every results file, declared once: name, type, unit, what it
// means and how it is computed from a JobRecord. CSV headers and rows,
// `kvlab regress`'s metrics, `kvlab schema` (the JSON schema the Python
// loader validates against, and the tables of docs/outputs.md) all come from
// this list, so they cannot drift apart.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kvlab/report/job_record.hpp"

namespace kvlab {

enum class FieldType { String, Int, Float };
const char* field_type_name(FieldType t);  // "string" | "int" | "float"

// One cell: empty (monostate: not applicable, NaN, or a failed job), text,
// an integer or a number.
using FieldValue = std::variant<std::monostate, std::string, std::int64_t, double>;
std::string format_field(const FieldValue& v);  // CSV text: shortest round-trip numbers, "" when empty
double field_number(const FieldValue& v);       // NaN unless Int or Float

// What one row of a table is about. Only the pointers a table uses are set.
struct RowContext {
  const JobRecord* job = nullptr;
  const BlockResult* block = nullptr;  // layers.csv
  int tensor = 0;                      // layers.csv: 0 = K, 1 = V
  const StepSummary* step = nullptr;   // steps.csv
  const DecodeStep* decode_step = nullptr;  // decode_steps.csv
};

struct Field {
  std::string name;
  FieldType type = FieldType::Float;
  std::string unit;     // "" when dimensionless
  std::string meaning;  // one sentence: what it is and how it is computed
  std::function<FieldValue(const RowContext&)> get;
  bool regress = false;     // compared against the baseline by `kvlab regress`
  bool model_only = false;  // present only with a model in the loop
};

// Columns generated from one declaration, e.g. `param.<name>` for each
// parameter of the jobs in a folder.
struct FieldGroup {
  std::string pattern;  // as documented: "param.<name>"
  std::string prefix;   // every generated name starts with it: "param."
  FieldType type = FieldType::String;
  std::string meaning;
  bool model_only = false;
};

// What varies between results folders: the parameter columns and, with a
// model in the loop, its layer count.
struct TableLayout {
  std::vector<std::string> param_names;
  int model_layers = 0;  // > 0: a model in the loop
  bool model() const { return model_layers > 0; }
};

struct ResultTable {
  std::string file;         // "summary.csv"
  std::string row;          // what one row is: "job"
  std::string description;
  bool model_only = false;  // written only with a model in the loop
  std::vector<std::variant<Field, FieldGroup>> columns;

  std::vector<Field> fields(const TableLayout& layout) const;  // concrete columns, in order
  std::vector<std::string> header(const TableLayout& layout) const;
};

// summary.csv, layers.csv, steps.csv, timing.csv, decode_steps.csv.
const std::vector<ResultTable>& result_tables();
const ResultTable& result_table(std::string_view file);

// The rows a record contributes to `table`: typed cells (the Python module's
// DataFrames) and the same cells formatted (CSV rows).
std::vector<std::vector<FieldValue>> table_values(const ResultTable& table, const TableLayout& layout,
                                                  const JobRecord& record);
std::vector<std::vector<std::string>> table_rows(const ResultTable& table, const TableLayout& layout,
                                                 const JobRecord& record);

// kvlab schema: the JSON schema file and the Markdown tables of docs/outputs.md.
std::string schema_json();
std::string schema_markdown();

}  // namespace kvlab
