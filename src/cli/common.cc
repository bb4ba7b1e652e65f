#include "cli/commands.h"

#include <cstdio>

#include "store/store.h"

namespace vigil::cli {

int Fail(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "vigil %s: %s\n", command.c_str(), message.c_str());
  return 1;
}

void AddHttpUrl(CLI::App* app, std::string& url) {
  app->add_option("-u,--url", url, "Server address: host:port, http://host:port or https://host:port")
      ->default_val("localhost:8000");
}

vigil::StatusOr<std::unique_ptr<vigil::HttpClient>> ConnectTo(const std::string& url, const TlsFlags& tls) {
  vigil::ClientOptions where;
  VIGIL_RETURN_IF_ERROR(vigil::ParseServerUrl(url, &where));
  tls.Apply(&where);
  return vigil::HttpClient::Connect(vigil::HttpOptionsFor(where));
}

std::string CheckStoreUrl(const std::string& url) {
  return vigil::IsPostgresUrl(url) ? std::string() : std::string("--store must be a postgres:// or postgresql:// URL");
}

}  // namespace vigil::cli
