// The /v1/feedback body.
#include <cstdint>
#include <string>

#include "server/admin_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)vigil::ParseFeedbackBody(std::string_view(reinterpret_cast<const char*>(data), size), 0);
  return 0;
}
