#include "core/logging.h"

namespace vigil {

Status InitLogging(std::string_view level) {
  const auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return InvalidArgument("--log-level: expected trace, debug, info, warn, error or off, got '" + std::string(level) +
                           "'");
  }
  spdlog::set_level(parsed);
  spdlog::set_pattern("ts=%Y-%m-%dT%H:%M:%S.%fZ level=%l %v", spdlog::pattern_time_type::utc);
  spdlog::flush_on(spdlog::level::info);
  return Status::Ok();
}

std::string LogValue(std::string_view value) {
  if (!value.empty() && value.find_first_of(" \"=\n\t") == std::string_view::npos) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace vigil
