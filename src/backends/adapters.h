// Factory functions of the runtime adapters. Each lives in its own
// translation unit so a runtime's heavy headers stay there.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace vigil {

StatusOr<std::unique_ptr<Backend>> CreateOnnxBackend(const BackendSpec& spec);
StatusOr<std::unique_ptr<Backend>> CreateTorchScriptBackend(const BackendSpec& spec);
StatusOr<std::unique_ptr<Backend>> CreateXgboostBackend(const BackendSpec& spec);

}  // namespace vigil
