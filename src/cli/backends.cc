// vigil backends: the backends compiled into this binary.
#include <cstdio>

#include "backends/backend.h"
#include "cli/commands.h"

namespace vigil::cli {

Command AddBackends(CLI::App& parent) {
  CLI::App* backends = parent.add_subcommand("backends", "List the backends compiled into this binary.");
  return {backends, [] {
            for (const auto& b : vigil::AvailableBackends()) std::printf("%s\n", b.c_str());
            return 0;
          }};
}

}  // namespace vigil::cli
