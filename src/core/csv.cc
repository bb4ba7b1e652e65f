#include "core/csv.h"

#include <charconv>
#include <cmath>

namespace vigil {

StatusOr<std::vector<CsvRow>> ParseCsv(std::string_view text, size_t max_rows, bool stop_at_max) {
  std::vector<CsvRow> rows;
  CsvRow row;
  std::string cell;
  bool quoted = false, after_quote = false, row_started = false;
  size_t line = 1;
  row.line = 1;
  auto end_cell = [&] {
    row.cells.push_back(std::move(cell));
    cell.clear();
    after_quote = false;
  };
  auto end_row = [&]() -> Status {
    if (row_started) {
      end_cell();
      if (rows.size() == max_rows) {
        return InvalidArgument("line " + std::to_string(row.line) + ": more than " + std::to_string(max_rows) +
                               " rows");
      }
      rows.push_back(std::move(row));
    }
    row = CsvRow{};
    row_started = false;
    return Status::Ok();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    if (stop_at_max && rows.size() == max_rows) return rows;
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          cell += '"';
          ++i;
        } else {
          quoted = false;
          after_quote = true;
        }
      } else {
        if (c == '\n') ++line;
        cell += c;
      }
      continue;
    }
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;  // CRLF
    if (c == '\n') {
      VIGIL_RETURN_IF_ERROR(end_row());
      row.line = ++line;
      continue;
    }
    if (!row_started) {
      row_started = true;
      row.line = line;
    }
    if (c == ',') {
      end_cell();
    } else if (c == '"' && cell.find_first_not_of(" \t") == std::string::npos && !after_quote) {
      cell.clear();  // spaces before an opening quote are not part of the cell
      quoted = true;
    } else if (after_quote && c != ' ' && c != '\t') {
      return InvalidArgument("line " + std::to_string(line) + ": text after a closing quote");
    } else if (!after_quote) {
      cell += c;
    }
  }
  if (quoted) return InvalidArgument("line " + std::to_string(row.line) + ": a quoted cell is not closed");
  VIGIL_RETURN_IF_ERROR(end_row());
  return rows;
}

StatusOr<double> CsvNumber(std::string_view cell) {
  while (!cell.empty() && (cell.front() == ' ' || cell.front() == '\t')) cell.remove_prefix(1);
  while (!cell.empty() && (cell.back() == ' ' || cell.back() == '\t')) cell.remove_suffix(1);
  if (cell.empty()) return std::nan("");
  if (cell.front() == '+') cell.remove_prefix(1);
  double v = 0;
  auto [ptr, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), v);
  if (ec != std::errc() || ptr != cell.data() + cell.size()) {
    return InvalidArgument("'" + std::string(cell.substr(0, 32)) + "' is not a number");
  }
  return v;
}

}  // namespace vigil
