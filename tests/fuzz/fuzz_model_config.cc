// config.yaml: parse, normalise, validate (what the load route's config
// override reaches too), and a version's backend_options.yaml.
#include <cstdint>
#include <string>

#include "repository/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = vigil::LoadModelConfig("m", text);
  // The same bytes as a version's backend_options.yaml over that config.
  if (config.ok() && config->backend != vigil::BackendKind::kEnsemble)
    (void)vigil::LoadVersionBackendOptions(*config, text);
  return 0;
}
