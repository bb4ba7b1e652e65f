// Deployment specs (YAML or JSON, as PUT /v1/deployments takes them): parse
// and validate against a catalog of models a, b and c; an accepted spec is
// routed, and must read back the same from its own YAML.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "routing/deployment_spec.h"
#include "routing/router.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vigil::ModelCatalog catalog;
  catalog.check = [](const std::string& model, int64_t version) -> vigil::Status {
    if (model != "a" && model != "b" && model != "c") return vigil::NotFound("no model " + model);
    return version > 3 ? vigil::NotFound("no version") : vigil::Status::Ok();
  };
  catalog.is_model = [](const std::string& name) { return name == "a" || name == "b" || name == "c"; };
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = vigil::LoadDeploymentSpec("ep", text, catalog);
  if (!spec.ok()) return 0;
  auto shared = std::make_shared<const vigil::DeploymentSpec>(*spec);
  vigil::Router router(shared);
  const std::string value(text.substr(0, std::min<size_t>(text.size(), 64)));
  vigil::RouteInput in;
  in.parameter = [&](std::string_view) -> std::optional<std::string> { return value; };
  in.header = [&](std::string_view) -> std::optional<std::string> { return value; };
  (void)router.Route(in);
  const std::string yaml = vigil::DeploymentSpecToYaml(*spec);
  auto again = vigil::LoadDeploymentSpec("ep", yaml, catalog);
  if (!again.ok() || vigil::DeploymentSpecToYaml(*again) != yaml) std::abort();
  return 0;
}
