// Structured logging on spdlog: every line is `time level event=... key=value`
// (logfmt), so it greps and parses. Call InitLogging once at start; the
// spdlog default logger is thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil {

// Sets the level ("trace", "debug", "info", "warn", "error", "off").
Status InitLogging(std::string_view level);

// Quotes a value for logfmt when it holds spaces, quotes or '='.
std::string LogValue(std::string_view value);

}  // namespace vigil
