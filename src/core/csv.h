// One CSV reader (RFC 4180) for every file of rows Vigil reads:
// reference.csv (drift references, labels) and `vigil bench --input-data`.
// Cells may be quoted ("a, b", "say ""hi"""), quoted cells may hold line
// breaks, lines may end in CRLF; empty lines are skipped. Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil {

struct CsvRow {
  size_t line = 0;  // 1-based line where the row starts, for messages
  std::vector<std::string> cells;
};

// Every row of `text`. An error (naming the line) for a quote left open or
// text after a closing quote; more than `max_rows` rows is an error too,
// unless `stop_at_max`: then reading stops there (a header is one row).
StatusOr<std::vector<CsvRow>> ParseCsv(std::string_view text, size_t max_rows = 10'000'000, bool stop_at_max = false);

// A cell as a number: surrounding spaces ignored; empty → NaN (missing);
// anything else that is not wholly a number is an error.
StatusOr<double> CsvNumber(std::string_view cell);

}  // namespace vigil
