// What the client subcommands share: where the server is, TLS, errors.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>

#include "client/http_client.h"
#include "client/inference_client.h"

namespace vigil::cli {

// A subcommand: its flags are registered on `app` when it is added; `run`
// is called when the command line chose it, and returns the exit code.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// Each in its own file (cli/<name>.cc).
Command AddServe(CLI::App& parent, int argc, char** argv);
Command AddBackends(CLI::App& parent);
Command AddBench(CLI::App& parent);
Command AddProfile(CLI::App& parent);
Command AddDeploy(CLI::App& parent);
Command AddMonitor(CLI::App& parent);
Command AddRollout(CLI::App& parent);
Command AddOptimize(CLI::App& parent);
Command AddDistill(CLI::App& parent);

// One line on stderr, exit code 1: what went wrong and what to fix.
int Fail(const std::string& command, const std::string& message);

// TLS options of the client commands (an https:// or grpcs:// URL turns TLS on).
struct TlsFlags {
  std::string ca, cert, key;
  void Add(CLI::App* app) {
    app->add_option("--tls-ca", ca, "CA bundle that signed the server's certificate (https://, grpcs://)");
    app->add_option("--tls-cert", cert, "Client certificate, for servers that require one (mutual TLS)");
    app->add_option("--tls-key", key, "The client certificate's private key");
  }
  void Apply(vigil::ClientOptions* o) const {
    o->tls_ca = ca;
    o->tls_cert = cert;
    o->tls_key = key;
  }
};

struct TargetFlags {
  TlsFlags tls;
  std::string url = "localhost:8000";
  std::string protocol = "http";
  bool binary = false;
  double timeout_s = 30;
  std::string token;

  void Add(CLI::App* app) {
    app->add_option("-u,--url", url,
                    "Server address: host:port, http://host:port, https://host:port, grpc://host:port or "
                    "grpcs://host:port")
        ->default_val("localhost:8000");
    tls.Add(app);
    app->add_option("--protocol", protocol, "http or grpc (a grpc:// URL implies grpc)")
        ->check(CLI::IsMember({"http", "grpc"}))
        ->default_val("http");
    app->add_flag("--binary", binary, "HTTP: binary tensor extension instead of JSON; gRPC: raw_input_contents");
    app->add_option("--timeout", timeout_s, "Seconds before one request counts as failed")
        ->default_val(30)
        ->check(CLI::PositiveNumber);
    app->add_option("--token", token, "Admin token for control calls (model load/unload; the server's --admin-token)")
        ->envname("VIGIL_ADMIN_TOKEN");
  }

  vigil::Status Resolve(vigil::ClientOptions* o) const {
    o->protocol = protocol == "grpc" ? vigil::Protocol::kGrpc : vigil::Protocol::kHttp;
    VIGIL_RETURN_IF_ERROR(vigil::ParseServerUrl(url, o));
    o->binary = binary;
    o->timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
    o->token = token;
    tls.Apply(o);
    return vigil::Status::Ok();
  }
};

// -u/--url of the commands that speak HTTP to a server (deploy, monitor).
void AddHttpUrl(CLI::App* app, std::string& url);

// Checks a --store value: a postgres:// or postgresql:// URL.
std::string CheckStoreUrl(const std::string& url);

// An HTTP connection to a running server ("host:port", "http://host:port"
// or "https://host:port").
vigil::StatusOr<std::unique_ptr<vigil::HttpClient>> ConnectTo(const std::string& url, const TlsFlags& tls);

}  // namespace vigil::cli
