// The `vigil` executable: one binary, several subcommands (one file each
// in src/cli/). main only dispatches.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <vector>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "Vigil: serve, deploy and monitor ML models.\n"
      "Speaks the Open Inference Protocol (KServe v2) over HTTP and gRPC."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("vigil ") + VIGIL_VERSION);

  using namespace vigil::cli;
  const std::vector<Command> commands = {AddServe(app, argc, argv), AddBackends(app), AddBench(app),
                                         AddProfile(app),           AddDeploy(app),   AddMonitor(app),
                                         AddRollout(app),           AddOptimize(app), AddDistill(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "vigil: %s (see vigil --help)\n", e.what());
    return 2;
  }
  for (const Command& c : commands) {
    if (c.app->parsed()) return c.run();
  }
  return 0;
}
