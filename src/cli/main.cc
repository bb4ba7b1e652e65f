// The `vigil` executable: one binary, several subcommands.
#include <CLI/CLI.hpp>

#include <cstdio>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "backends/backend.h"
#include "client/bench.h"
#include "client/http_client.h"
#include "client/profile.h"
#include "core/clock.h"
#include "core/logging.h"
#include "server/access.h"
#include "server/server.h"

namespace {

// Where `vigil serve` gets its tokens: a flag, a file or the environment.
struct TokenFlags {
  std::string admin, admin_file, feedback, feedback_file;
  bool on_command_line = false;  // a token given as a flag, visible in ps

  vigil::Status Resolve(int argc, char** argv, vigil::ServerOptions* so) {
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      for (std::string_view flag : {"--admin-token", "--feedback-token"}) {
        if (arg == flag || (arg.substr(0, flag.size()) == flag && arg.size() > flag.size() && arg[flag.size()] == '='))
          on_command_line = true;
      }
    }
    if (!admin_file.empty()) {
      VIGIL_ASSIGN_OR_RETURN(admin, vigil::ReadTokenFile(admin_file));
    }
    if (!feedback_file.empty()) {
      VIGIL_ASSIGN_OR_RETURN(feedback, vigil::ReadTokenFile(feedback_file));
    }
    so->admin_token = admin;
    so->feedback_token = feedback;
    return vigil::Status::Ok();
  }
};

int Serve(const vigil::ServerOptions& options, const std::string& log_level, bool token_on_command_line) {
  if (auto s = vigil::InitLogging(log_level); !s.ok()) {
    std::fprintf(stderr, "vigil serve: %s\n", s.message().c_str());
    return 2;
  }
  if (token_on_command_line) {
    spdlog::warn(
        "event=token_on_command_line detail={}",
        vigil::LogValue("a token given as --admin-token/--feedback-token shows in ps and the shell's history; use "
                        "--admin-token-file, --feedback-token-file or VIGIL_ADMIN_TOKEN/VIGIL_FEEDBACK_TOKEN"));
  }
  const vigil::Status s = vigil::RunServer(options);
  if (!s.ok()) {
    spdlog::error("event=server_failed error={}", vigil::LogValue(s.message()));
    std::fprintf(stderr, "vigil serve: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}

// One line on stderr, exit code 1: what went wrong and what to fix.
int Fail(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "vigil %s: %s\n", command.c_str(), message.c_str());
  return 1;
}

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

int Bench(vigil::BenchOptions o, const TargetFlags& target, bool json, double stability_pct) {
  if (auto s = target.Resolve(&o.client); !s.ok()) return Fail("bench", s.message());
  o.timeout_s = target.timeout_s;
  o.stability = stability_pct / 100.0;
  std::FILE* progress = isatty(STDERR_FILENO) ? stderr : nullptr;
  auto report = vigil::RunBench(o, progress);
  if (!report.ok()) return Fail("bench", report.status().message());
  if (json) {
    std::printf("%s\n", vigil::BenchJson(*report).c_str());
  } else {
    std::printf("%s", vigil::FormatBenchTable(*report).c_str());
  }
  return 0;
}

struct ProfileFlags {
  std::string model_repository;
  std::string http_url;
  std::string output;
  bool json = false;
  bool no_refine = false;
};

int Profile(vigil::ProfileOptions o, const TargetFlags& target, const ProfileFlags& flags) {
  if (auto s = target.Resolve(&o.client); !s.ok()) return Fail("profile", s.message());
  std::unique_ptr<vigil::Server> server;
  if (!flags.model_repository.empty()) {
    // In-process: a server of our own on free loopback ports.
    (void)vigil::InitLogging("warn");
    vigil::ServerOptions so;
    so.model_repository = flags.model_repository;
    so.host = "127.0.0.1";
    so.http_port = 0;
    so.grpc_port = o.client.protocol == vigil::Protocol::kGrpc ? 0 : -1;
    so.shutdown_timeout_s = 5;
    so.data_dir = "";  // the profiled server keeps nothing
    auto started = vigil::Server::Start(so);
    if (!started.ok()) return Fail("profile", started.status().message());
    server = std::move(started).value();
    o.client.host = "127.0.0.1";
    o.client.port =
        o.client.protocol == vigil::Protocol::kGrpc ? static_cast<uint16_t>(server->grpc_port()) : server->http_port();
    o.control = o.client;
    o.control.port = server->http_port();
  } else {
    o.control = o.client;
    if (!flags.http_url.empty()) {
      if (auto s = vigil::ParseServerUrl(flags.http_url, &o.control); !s.ok()) return Fail("profile", s.message());
    } else if (o.client.protocol == vigil::Protocol::kGrpc) {
      o.control.port = 8000;
    }
  }
  o.control.protocol = vigil::Protocol::kHttp;
  o.control.binary = false;
  o.refine = !flags.no_refine;
  std::FILE* progress = isatty(STDERR_FILENO) ? stderr : nullptr;
  auto report = vigil::RunProfile(o, progress);
  if (server) server->Shutdown("profile finished");
  if (!report.ok()) return Fail("profile", report.status().message());
  const std::string yaml = vigil::RecommendedConfigYaml(*report);
  if (!flags.output.empty() && !yaml.empty()) {
    std::FILE* f = std::fopen(flags.output.c_str(), "w");
    if (!f) return Fail("profile", "cannot write --output " + flags.output);
    std::fputs(yaml.c_str(), f);
    std::fclose(f);
  }
  if (flags.json) {
    std::printf("%s\n", vigil::ProfileJson(*report).c_str());
  } else {
    std::printf("%s", vigil::FormatProfileTable(*report).c_str());
    if (!yaml.empty())
      std::printf("\nrecommended config.yaml%s:\n%s",
                  flags.output.empty() ? "" : (" (written to " + flags.output + ")").c_str(), yaml.c_str());
  }
  return report->best ? 0 : 3;
}

struct DeployFlags {
  TlsFlags tls;
  std::string url = "localhost:8000";
  std::string token;
  std::string file;
  std::string endpoint;
  std::string candidate;
  double share = -1;
  int step = -2;
  bool json = false;
};

// One readable table of an endpoint's status document.
std::string StatusTable(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("variants")) return body + "\n";
  std::string out =
      fmt::format("endpoint {}{}{}\n", d["endpoint"].GetString(), d["paused"].GetBool() ? " (paused)" : "",
                  d["kill_switch"].GetBool() ? " (KILL SWITCH ON: all traffic to production)" : "");
  out += fmt::format("{:<16} {:<26} {:>7} {:<10} {:>7} {:>9} {:>7} {:>8} {:>8}\n", "variant", "model", "version",
                     "mode", "share %", "requests", "errors", "p50 ms", "p99 ms");
  for (const auto& v : d["variants"].GetArray()) {
    const int64_t version = v["version"].GetInt64();
    std::string mode = v["mode"].GetString();
    if (v.HasMember("step")) mode += fmt::format(" {}", v["step"].GetInt());
    out += fmt::format("{:<16} {:<26} {:>7} {:<10} {:>7} {:>9} {:>7} {:>8.3f} {:>8.3f}\n", v["name"].GetString(),
                       v["model"].GetString(), version ? std::to_string(version) : "latest", mode,
                       v["share"].GetDouble(), v["requests"].GetUint64(), v["errors"].GetUint64(),
                       v["latency_ms"]["p50"].GetDouble(), v["latency_ms"]["p99"].GetDouble());
  }
  out += "(traffic since the last change to the spec)\n";
  return out;
}

// An HTTP connection to a running server ("host:port", "http://host:port"
// or "https://host:port").
vigil::StatusOr<std::unique_ptr<vigil::HttpClient>> ConnectTo(const std::string& url, const TlsFlags& tls) {
  vigil::ClientOptions where;
  VIGIL_RETURN_IF_ERROR(vigil::ParseServerUrl(url, &where));
  tls.Apply(&where);
  return vigil::HttpClient::Connect(vigil::HttpOptionsFor(where));
}

int Deploy(const std::string& action, const DeployFlags& f) {
  const std::string cmd = "deploy " + action;
  auto client = ConnectTo(f.url, f.tls);
  if (!client.ok()) return Fail(cmd, client.status().message());
  std::map<std::string, std::string> headers;
  if (!f.token.empty()) headers["Authorization"] = "Bearer " + f.token;
  std::string endpoint = f.endpoint;
  vigil::StatusOr<vigil::HttpReply> reply = vigil::Internal("no request");
  if (action == "apply") {
    std::ifstream in(f.file);
    if (!in) return Fail(cmd, "cannot read -f " + f.file);
    std::stringstream text;
    text << in.rdbuf();
    if (endpoint.empty()) endpoint = std::filesystem::path(f.file).stem().string();
    reply = (*client)->Put("/v1/deployments/" + endpoint, text.str(), headers);
  } else if (action == "status") {
    reply = (*client)->Get("/v1/deployments/" + endpoint + "/status");
  } else if (action == "delete") {
    reply = (*client)->Request("DELETE", "/v1/deployments/" + endpoint, "", headers);
  } else if (action == "weight") {
    if ((f.share < 0) == (f.step < -1)) return Fail(cmd, "give --share PERCENT (ab) or --step N (canary)");
    const std::string body =
        f.share >= 0 ? fmt::format("{{\"share\": {}}}", f.share) : fmt::format("{{\"step\": {}}}", f.step);
    reply = (*client)->Post("/v1/deployments/" + endpoint + "/candidates/" + f.candidate + "/weight", body, headers);
  } else {
    std::string body;
    if (!f.candidate.empty()) body = "{\"candidate\": \"" + f.candidate + "\"}";
    reply = (*client)->Post("/v1/deployments/" + endpoint + "/" + action, body, headers);
  }
  if (!reply.ok()) return Fail(cmd, reply.status().message());
  if (reply->status != 200) {
    return Fail(cmd, vigil::ErrorMessageOf(reply->body).value_or("HTTP " + std::to_string(reply->status)));
  }
  if (f.json || action == "delete") {
    std::printf("%s\n", reply->body.c_str());
  } else {
    std::printf("%s", StatusTable(reply->body).c_str());
  }
  return 0;
}

struct MonitorFlags {
  TlsFlags tls;
  std::string url = "localhost:8000";
  std::string name;
  bool all = false;
  bool json = false;
};

std::string Utc(int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:02}:{:02}:{:02}Z", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string Num(const rapidjson::Value& v) { return v.IsNumber() ? fmt::format("{:.4g}", v.GetDouble()) : "-"; }

// The drift table of each monitored version's latest window, quality per
// variant (for an endpoint) and the alerts firing now.
int Monitor(const MonitorFlags& f) {
  const std::string cmd = "monitor";
  auto client = ConnectTo(f.url, f.tls);
  if (!client.ok()) return Fail(cmd, client.status().message());
  auto get = [&](const std::string& target) -> vigil::StatusOr<std::string> {
    auto reply = (*client)->Get(target);
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) {
      return vigil::InvalidArgument(
          vigil::ErrorMessageOf(reply->body).value_or("HTTP " + std::to_string(reply->status)));
    }
    return reply->body;
  };
  auto drift = get("/v1/monitoring/" + f.name + "/drift?limit=50");
  if (!drift.ok()) return Fail(cmd, drift.status().message());
  auto alerts = get("/v1/alerts");
  if (!alerts.ok()) return Fail(cmd, alerts.status().message());
  auto status = get("/v1/deployments/" + f.name + "/status");  // only endpoints have one
  if (f.json) {
    std::printf("{\"drift\":%s,\"alerts\":%s,\"status\":%s}\n", drift->c_str(), alerts->c_str(),
                status.ok() ? status->c_str() : "null");
    return 0;
  }
  rapidjson::Document d, a, st;
  d.Parse(drift->c_str());
  a.Parse(alerts->c_str());
  std::string out = fmt::format("monitor {}\n", f.name);
  for (const auto& v : d["versions"].GetArray()) {
    out += fmt::format("  {} v{}: ", v["model"].GetString(), v["version"].GetInt64());
    if (!v["monitored"].GetBool()) {
      out += "not monitored\n";
      continue;
    }
    if (v["reference"].IsObject()) {
      out += fmt::format("reference {} ({} rows)", v["reference"]["source"].GetString(),
                         v["reference"]["rows"].GetInt64());
    } else {
      out += fmt::format("collecting the reference from the first {} live rows",
                         v["collecting_reference_rows"].GetInt64());
    }
    out += fmt::format(", NaN/Inf in {} inputs, {} outputs\n", v["nonfinite_inputs"].GetInt64(),
                       v["nonfinite_outputs"].GetInt64());
    if (v["reference"].IsObject() && v["reference"]["labeled"].GetInt64() > 0) {
      out += fmt::format("    reference quality on {} labelled rows:", v["reference"]["labeled"].GetInt64());
      for (const auto& m : v["reference"]["quality"].GetObject()) {
        if (std::string_view(m.name.GetString()).rfind("label_delay", 0) == 0) continue;
        out += fmt::format(" {}={}", m.name.GetString(), Num(m.value));
      }
      out += "\n";
    }
    if (v.HasMember("health")) {
      const auto& h = v["health"];
      out += fmt::format("    health, last window: {} requests, {} errors ({}), p99 {} ms, queue peak {} ({})\n",
                         h["requests"].GetInt64(), h["errors"].GetInt64(), Num(h["error_rate"]),
                         Num(h["latency_p99_ms"]), h["peak_queue"].GetInt64(), Num(h["queue_saturation"]));
    }
  }
  // The latest window of each model version.
  std::map<std::string, const rapidjson::Value*> latest;
  for (const auto& w : d["windows"].GetArray()) {
    latest[fmt::format("{} v{}", w["model"].GetString(), w["version"].GetInt64())] = &w;
  }
  if (latest.empty()) out += "\nno drift window has closed yet\n";
  for (const auto& [who, wp] : latest) {
    const auto& w = *wp;
    int inputs = 0, drifted = 0;
    for (const auto& c : w["columns"].GetArray()) {
      if (std::string(c["kind"].GetString()) != "input") continue;
      ++inputs;
      drifted += c["drifted"].GetBool();
    }
    out += fmt::format("\ndrift, {}: window {}..{}, {} rows, {}/{} features drifted{}\n", who,
                       Utc(w["start_ms"].GetInt64()), Utc(w["end_ms"].GetInt64()), w["rows"].GetInt64(), drifted,
                       inputs, w["dataset_drift"].GetBool() ? " (DATASET DRIFT)" : "");
    std::vector<const rapidjson::Value*> cols;
    for (const auto& c : w["columns"].GetArray()) cols.push_back(&c);
    // Drifted first, then by how close the statistic is to its threshold.
    auto closeness = [](const rapidjson::Value* c) {
      const double s = (*c)["statistic"].IsNumber() ? (*c)["statistic"].GetDouble() : 0;
      const double t = (*c)["threshold"].GetDouble();
      const std::string m = (*c)["method"].GetString();
      return (m == "ks" || m == "chi2") ? (s > 0 ? t / s : 1e9) : s / t;
    };
    std::stable_sort(cols.begin(), cols.end(), [&](auto* x, auto* y) {
      if ((*x)["drifted"].GetBool() != (*y)["drifted"].GetBool()) return (*x)["drifted"].GetBool();
      return closeness(x) > closeness(y);
    });
    out += fmt::format("  {:<28} {:<6} {:<11} {:>9} {:>9} {:>7} {:>9} {:>9} {:>7} {:>6}\n", "column", "kind", "method",
                       "statistic", "threshold", "drift", "psi", "ks_p", "missing", "out");
    size_t shown = 0;
    for (const auto* c : cols) {
      if (!f.all && shown >= 12 && !(*c)["drifted"].GetBool()) break;
      ++shown;
      out += fmt::format("  {:<28} {:<6} {:<11} {:>9} {:>9} {:>7} {:>9} {:>9} {:>7} {:>6}\n", (*c)["name"].GetString(),
                         (*c)["kind"].GetString(), (*c)["method"].GetString(), Num((*c)["statistic"]),
                         Num((*c)["threshold"]), (*c)["drifted"].GetBool() ? "YES" : "no", Num((*c)["psi"]),
                         Num((*c)["ks_p"]), (*c)["missing"].GetInt64(), (*c)["out_of_range"].GetInt64());
    }
    if (shown < cols.size()) out += fmt::format("  ... {} calmer columns (--all shows them)\n", cols.size() - shown);
  }
  if (status.ok()) {
    st.Parse(status->c_str());
    out += "\nquality per variant (joined feedback since the spec took effect)\n";
    if (!st.HasMember("quality") || st["quality"].ObjectEmpty()) out += "  no feedback joined yet\n";
    if (st.HasMember("quality")) {
      for (const auto& q : st["quality"].GetObject()) {
        out += fmt::format("  {:<16}", q.name.GetString());
        for (const auto& m : q.value.GetObject()) out += fmt::format(" {}={}", m.name.GetString(), Num(m.value));
        out += "\n";
      }
    }
    // Hourly windows of the last day: realised quality beside the estimate
    // that needs no labels.
    if (auto windows = get("/v1/monitoring/" + f.name +
                           "/quality?window_s=3600&from=" + std::to_string(vigil::UnixMillis() - 24 * 3600 * 1000LL));
        windows.ok()) {
      rapidjson::Document qw;
      qw.Parse(windows->c_str());
      const auto& list = qw["windows"];
      out += "\nquality by hour (realised from labels; estimated from confidence before labels come)\n";
      if (list.Empty()) out += "  no predictions logged in the last day\n";
      for (rapidjson::SizeType i = list.Size() > 3 ? list.Size() - 3 : 0; i < list.Size(); ++i) {
        const auto& w = list[i];
        for (const auto& v : w["variants"].GetObject()) {
          const auto& q = v.value;
          out += fmt::format("  {} {:<16} predictions={} labeled={} accuracy={} estimated_accuracy={}{}\n",
                             Utc(w["start_ms"].GetInt64()), v.name.GetString(), q["predictions"].GetInt64(),
                             q["labeled"].GetInt64(), q.HasMember("accuracy") ? Num(q["accuracy"]) : "-",
                             q.HasMember("estimated_accuracy") ? Num(q["estimated_accuracy"]) : "-",
                             w["incomplete"].GetBool() ? " (labels still coming)" : "");
        }
      }
    }
  }
  out += "\nalerts firing\n";
  if (a["firing"].Empty()) out += "  none\n";
  for (const auto& x : a["firing"].GetArray()) {
    std::string labels;
    for (const auto& l : x["labels"].GetObject())
      labels += fmt::format(" {}={}", l.name.GetString(), l.value.GetString());
    out += fmt::format("  {}{} since {}: {} {} (threshold {})\n", x["alertname"].GetString(), labels,
                       Utc(x["since_ms"].GetInt64()), x["statistic"].GetString(), Num(x["value"]), Num(x["threshold"]));
  }
  std::printf("%s", out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Vigil: serve, deploy and monitor ML models.\n"
      "Speaks the Open Inference Protocol (KServe v2) over HTTP and gRPC."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("vigil ") + VIGIL_VERSION);

  vigil::ServerOptions so;
  std::string log_level = "info";
  CLI::App* serve = app.add_subcommand("serve", "Serve the models of a model repository over HTTP and gRPC.");
  serve
      ->add_option("--model-repository", so.model_repository,
                   "Folder holding <model>/config.yaml and <model>/<version>/model.<ext>")
      ->required()
      ->check(CLI::ExistingDirectory);
  serve->add_option("--http-port", so.http_port, "HTTP port; 0 picks a free port (the log says which)")
      ->default_val(8000);
  serve
      ->add_option("--grpc-port", so.grpc_port,
                   "gRPC port (inference.GRPCInferenceService); 0 picks a free port; -1 (default) = no gRPC")
      ->default_val(-1)
      ->check(CLI::Range(-1, 65535));
  serve->add_option("--host", so.host, "Address to listen on")->default_val("0.0.0.0");
  serve
      ->add_option("--poll-interval", so.poll_interval_s,
                   "Seconds between re-scans of the repository for new, changed or removed versions; 0 = load once")
      ->default_val(0)
      ->check(CLI::Range(0.0, 86400.0));
  serve->add_option("--log-level", log_level, "trace, debug, info, warn, error or off")->default_val("info");
  serve
      ->add_option("--shutdown-timeout", so.shutdown_timeout_s,
                   "Seconds to let in-flight requests finish after SIGTERM/SIGINT")
      ->default_val(30)
      ->check(CLI::Range(0.0, 3600.0));
  serve->add_option("--http-threads", so.http_threads, "HTTP I/O threads; 0 = one per core")
      ->default_val(0)
      ->check(CLI::Range(0, 256));
  serve->add_option("--max-body-bytes", so.max_body_bytes, "Largest request body (and gRPC message); larger gets 413")
      ->default_val(64 << 20)
      ->check(CLI::Range(size_t{1}, size_t{2} << 30));
  serve
      ->add_option("--max-connections", so.max_connections,
                   "Open HTTP connections at most; more are answered 503 and closed (counted in "
                   "vigil_http_connections_refused_total). 0 = what the file limit leaves room for")
      ->default_val(0)
      ->check(CLI::Range(size_t{0}, size_t{1'000'000}));
  serve
      ->add_option("--max-buffered-bytes", so.max_buffered_bytes,
                   "Request bodies still being received, across all connections, at most this many bytes; past it "
                   "new bodies get 503")
      ->default_val(256 << 20)
      ->check(CLI::Range(size_t{1} << 16, size_t{64} << 30));
  serve
      ->add_option("--body-timeout", so.body_timeout_s,
                   "Seconds a request body may take to arrive after its header; slower ones get 408")
      ->default_val(30)
      ->check(CLI::Range(0.1, 3600.0));
  TokenFlags tokens;
  auto* admin_token =
      serve
          ->add_option("--admin-token", tokens.admin,
                       "Token that control changes (deployments, model load/unload) must carry as 'Authorization: "
                       "Bearer <token>'; without one they are accepted only from loopback. Visible in ps: prefer "
                       "--admin-token-file or VIGIL_ADMIN_TOKEN")
          ->envname("VIGIL_ADMIN_TOKEN");
  serve->add_option("--admin-token-file", tokens.admin_file, "Read the admin token from the first line of this file")
      ->excludes(admin_token);
  auto* feedback_token =
      serve
          ->add_option("--feedback-token", tokens.feedback,
                       "Token that /v1/feedback must carry (the admin token works too); without either, feedback is "
                       "accepted only from loopback. Visible in ps: prefer --feedback-token-file or "
                       "VIGIL_FEEDBACK_TOKEN")
          ->envname("VIGIL_FEEDBACK_TOKEN");
  serve->add_option("--feedback-token-file", tokens.feedback_file, "Read the feedback token from this file")
      ->excludes(feedback_token);
  auto* tls_cert = serve->add_option("--tls-cert", so.tls_cert,
                                     "TLS certificate chain (PEM) for HTTPS and gRPC over TLS; plain-text clients "
                                     "are then refused");
  auto* tls_key = serve->add_option("--tls-key", so.tls_key, "The certificate's private key (PEM)");
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  serve->add_option("--tls-client-ca", so.tls_client_ca, "CA (PEM) whose certificates clients must present: mutual TLS")
      ->needs(tls_cert);
  serve->add_option("--alert-webhook-ca", so.alert_webhook_ca,
                    "CA (PEM) that signed an https:// --alert-webhook's certificate; default the system's");
  serve
      ->add_option("--control-threads", so.control_threads,
                   "Threads for routes that may block (deployments, feedback, monitoring reads, model loads)")
      ->default_val(2)
      ->check(CLI::Range(1, 64));
  serve->add_option("--data-dir", so.data_dir, "Folder of the store (vigil.db: deployments and their history)")
      ->default_val("vigil-data");
  serve
      ->add_option("--log-inputs-sample-rate", so.log_inputs_sample_rate,
                   "Share (0 to 1) of endpoint predictions logged with their inputs")
      ->default_val(0)
      ->check(CLI::Range(0.0, 1.0));
  bool no_prediction_log = false;
  serve->add_flag("--no-prediction-log", no_prediction_log,
                  "Do not log endpoint predictions (feedback then joins nothing)");
  serve
      ->add_option("--prediction-retention-days", so.prediction_retention_days,
                   "Logged predictions older than this are deleted; 0 = kept regardless of age")
      ->default_val(30)
      ->check(CLI::Range(0.0, 36500.0));
  serve
      ->add_option("--prediction-max-rows", so.prediction_max_rows,
                   "The oldest logged predictions past this many rows are deleted; 0 = no limit")
      ->default_val(10'000'000)
      ->check(CLI::NonNegativeNumber);
  serve->add_option("--alert-webhook", so.alert_webhook,
                    "Post firing and resolved alerts here, Alertmanager webhook format (http(s)://host:port/path)");
  serve
      ->add_option("--monitoring-retention-days", so.monitoring_retention_days,
                   "Stored drift windows older than this are deleted")
      ->default_val(30)
      ->check(CLI::Range(0.001, 36500.0));
  serve
      ->add_option("--health-window-s", so.health_window_s,
                   "Seconds per window in which latency p99, error rate, queue saturation and memory are judged")
      ->default_val(30)
      ->check(CLI::Range(0.05, 86400.0));
  double memory_limit_mb = 0;
  serve
      ->add_option("--alert-memory-mb", memory_limit_mb,
                   "MemoryHigh fires when the server's resident memory is over this; 0 = 90% of the cgroup's "
                   "limit or the machine's memory")
      ->default_val(0)
      ->check(CLI::Range(0.0, 1e9));
  serve->add_option("--require-model", so.required_models,
                    "A model that must be READY for /v2/health/ready to answer ready (repeatable)");

  CLI::App* backends = app.add_subcommand("backends", "List the backends compiled into this binary.");

  vigil::BenchOptions bo;
  TargetFlags bench_target;
  bool bench_json = false;
  double stability_pct = 10;
  CLI::App* bench = app.add_subcommand(
      "bench",
      "Load-test a model (perf_analyzer's job): closed-loop concurrency or open-loop rate levels, measured in\n"
      "windows until they agree; throughput, latency percentiles, errors and the server's queue/compute split.");
  bench_target.Add(bench);
  bench->add_option("-m,--model", bo.model, "Model (or endpoint) to call")->required();
  bench->add_option("--model-version", bo.version, "Version to call; default the server's choice");
  auto* conc =
      bench
          ->add_option("--concurrency", bo.concurrency, "Closed loop: requests kept in flight, e.g. 1,8,32 (default 1)")
          ->delimiter(',');
  bench->add_option("--rate", bo.rates, "Open loop: requests per second, e.g. 1000,5000")
      ->delimiter(',')
      ->excludes(conc);
  bench->add_flag("--poisson", bo.poisson, "Open loop with exponential gaps (Poisson arrivals) instead of fixed ones");
  bench->add_option("--batch", bo.batch, "Rows per request")->default_val(1)->check(CLI::PositiveNumber);
  bench->add_option("--input-data", bo.input_data,
                    "CSV (a row per line, header optional) or JSON ({\"data\": [{\"<input>\": [...]}]}); default "
                    "random data");
  bench->add_option("--duration", bo.duration_s, "Longest measurement per level, seconds")->default_val(30);
  bench->add_option("--window", bo.window_s, "Measurement window, seconds")->default_val(2);
  bench->add_option("--stability", stability_pct, "Windows agree when throughput and mean latency are within this %")
      ->default_val(10)
      ->check(CLI::Range(0.1, 100.0));
  bench->add_option("--stable-windows", bo.stable_windows, "Consecutive windows that must agree")
      ->default_val(3)
      ->check(CLI::Range(1, 100));
  bench->add_option("--metrics-url", bo.metrics_url,
                    "Where the server's /metrics are; default the HTTP URL (or port 8000 for gRPC)");
  bench->add_option("--threads", bo.threads, "Client threads; 0 = one per core, at most 4")->default_val(0);
  bench->add_option("--max-connections", bo.max_connections, "Open loop over HTTP: most connections opened")
      ->default_val(1024)
      ->check(CLI::PositiveNumber);
  bench->add_flag("--json", bench_json, "One JSON document on stdout instead of the table");

  vigil::ProfileOptions po;
  TargetFlags profile_target;
  ProfileFlags pf;
  CLI::App* profile = app.add_subcommand(
      "profile",
      "Find the serving config with the most throughput under a p99 budget (Model Analyzer's job): sweeps\n"
      "max_batch_size, max_queue_delay_us and instances on a server started in-process (--model-repository)\n"
      "or running at --url, then prints every config tried and the best as a config.yaml snippet.");
  profile_target.Add(profile);
  auto* repo_opt = profile
                       ->add_option("--model-repository", pf.model_repository,
                                    "Start a server in-process on this repository (instead of --url)")
                       ->check(CLI::ExistingDirectory);
  profile->add_option("--http-url", pf.http_url,
                      "HTTP address for config loads and /metrics when --url is gRPC; default port 8000");
  profile->add_option("-m,--model", po.model, "Model to profile")->required();
  profile->add_option("--latency-budget", po.latency_budget_ms, "p99 latency budget, milliseconds")
      ->default_val(10)
      ->check(CLI::PositiveNumber);
  profile->add_option("--time-budget", po.time_budget_s, "Seconds the whole search may take")
      ->default_val(120)
      ->check(CLI::PositiveNumber);
  profile->add_option("--max-batch-sizes", po.max_batch_sizes, "Coarse grid of max_batch_size")
      ->delimiter(',')
      ->default_str("16,64");
  profile->add_option("--delays-us", po.delays_us, "Coarse grid of max_queue_delay_us")
      ->delimiter(',')
      ->default_str("0,1000");
  profile->add_option("--instances", po.instances, "Coarse grid of instance counts")
      ->delimiter(',')
      ->default_str("1,2");
  profile->add_option("--max-concurrency", po.max_concurrency, "Highest closed-loop concurrency tried")
      ->default_val(256)
      ->check(CLI::PositiveNumber);
  profile->add_flag("--no-refine", pf.no_refine, "Only the coarse grid, no refinement around the best");
  profile->add_option("--batch", po.batch, "Rows per request")->default_val(1)->check(CLI::PositiveNumber);
  profile->add_option("--input-data", po.input_data, "CSV or JSON request data, as for vigil bench");
  profile->add_option("--window", po.window_s, "Measurement window, seconds")
      ->default_val(0.3)
      ->check(CLI::PositiveNumber);
  profile->add_option("-o,--output", pf.output, "Write the recommended config.yaml snippet to this file");
  profile->add_flag("--json", pf.json, "One JSON document on stdout instead of the table");
  (void)repo_opt;

  DeployFlags df;
  CLI::App* deploy =
      app.add_subcommand("deploy", "Change and read the endpoints of a running server (/v1/deployments).");
  deploy->require_subcommand(1);
  deploy->fallthrough();  // its subcommands inherit this: -u, --token, --json may come after them
  df.tls.Add(deploy);
  deploy->add_option("-u,--url", df.url, "Server address: host:port, http://host:port or https://host:port")
      ->default_val("localhost:8000");
  deploy->add_option("--token", df.token, "Admin token (the server's --admin-token)")->envname("VIGIL_ADMIN_TOKEN");
  deploy->add_flag("--json", df.json, "Print the server's JSON instead of a table");
  CLI::App* d_apply = deploy->add_subcommand("apply", "Create or replace an endpoint from a spec file (YAML or JSON)");
  d_apply->add_option("-f,--file", df.file, "The spec")->required();
  d_apply->add_option("--endpoint", df.endpoint, "Endpoint name; default the file's name without extension");
  std::vector<CLI::App*> with_endpoint;
  for (const char* name : {"status", "delete", "pause", "resume"}) {
    CLI::App* sub =
        deploy->add_subcommand(name, std::string(name) == "status" ? "Per-variant traffic, errors and latency"
                                                                   : std::string(name) + " the endpoint");
    sub->add_option("endpoint", df.endpoint, "Endpoint")->required();
  }
  for (const char* name : {"promote", "rollback"}) {
    CLI::App* sub = deploy->add_subcommand(
        name, std::string(name) == "promote" ? "Make a candidate production"
                                             : "Set a candidate's share (default: every candidate's) to 0 at once");
    sub->add_option("endpoint", df.endpoint, "Endpoint")->required();
    sub->add_option("candidate", df.candidate, "Candidate (promote: needed when there are several)");
  }
  CLI::App* d_weight = deploy->add_subcommand("weight", "Set an ab candidate's share or a canary's step");
  d_weight->add_option("endpoint", df.endpoint, "Endpoint")->required();
  d_weight->add_option("candidate", df.candidate, "Candidate")->required();
  d_weight->add_option("--share", df.share, "Percent of traffic (ab)");
  d_weight->add_option("--step", df.step, "Index into the canary's steps (-1 = 0%)");

  MonitorFlags mf;
  CLI::App* monitor = app.add_subcommand(
      "monitor", "Print the drift table, quality per variant and firing alerts of a model or endpoint.");
  monitor->add_option("name", mf.name, "Model or endpoint")->required();
  mf.tls.Add(monitor);
  monitor->add_option("-u,--url", mf.url, "Server address: host:port, http://host:port or https://host:port")
      ->default_val("localhost:8000");
  monitor->add_flag("--all", mf.all, "Show every column, not only the drifted and the 12 closest to drifting");
  monitor->add_flag("--json", mf.json, "Print the server's JSON documents instead of tables");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "vigil: %s (see vigil --help)\n", e.what());
    return 2;
  }
  if (monitor->parsed()) return Monitor(mf);
  if (serve->parsed()) {
    if (auto s = tokens.Resolve(argc, argv, &so); !s.ok()) {
      std::fprintf(stderr, "vigil serve: %s\n", s.message().c_str());
      return 2;
    }
    so.log_predictions = !no_prediction_log;
    so.memory_limit_bytes = static_cast<uint64_t>(memory_limit_mb * 1024 * 1024);
    return Serve(so, log_level, tokens.on_command_line);
  }
  if (deploy->parsed()) {
    for (CLI::App* sub : deploy->get_subcommands()) return Deploy(sub->get_name(), df);
  }
  if (profile->parsed()) {
    po.level_limit_s = po.window_s * 6;
    return Profile(po, profile_target, pf);
  }
  if (bench->parsed()) {
    if (bo.concurrency.empty() && bo.rates.empty()) bo.concurrency = {1};
    return Bench(bo, bench_target, bench_json, stability_pct);
  }
  if (backends->parsed()) {
    for (const auto& b : vigil::AvailableBackends()) std::printf("%s\n", b.c_str());
    return 0;
  }
  return 0;
}
