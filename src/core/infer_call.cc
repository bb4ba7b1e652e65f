#include "core/infer_call.h"

#include <charconv>

namespace vigil {

StatusOr<int64_t> ParseVersionString(std::string_view version) {
  if (version.empty()) return int64_t{0};
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
  if (ec != std::errc() || ptr != version.data() + version.size() || v < 1) {
    const std::string shown(version.substr(0, 32));
    return InvalidArgument("model version must be a positive integer, got '" + shown +
                           (version.size() > 32 ? "...'" : "'"));
  }
  return v;
}

}  // namespace vigil
