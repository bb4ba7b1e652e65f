// config.yaml: parse, normalise, validate (what the load route's config
// override reaches too).
#include <cstdint>
#include <string>

#include "repository/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)vigil::LoadModelConfig("m", std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
