// vigil deploy: change and read the endpoints of a running server.
#include <fmt/format.h>
#include <rapidjson/document.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "protocol/json_writer.h"
#include "protocol/oip_json.h"

namespace vigil::cli {
namespace {

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

// Latency in ms, or "-" for a variant that answered nothing yet.
std::string Ms(const rapidjson::Value& v, const char* q) {
  if (v["requests"].GetUint64() == 0) return "-";
  return fmt::format("{:.3f}", v["latency_ms"][q].GetDouble());
}

// One readable table of an endpoint's status document, within 80 columns.
std::string StatusTable(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("variants")) return body + "\n";
  std::string out =
      fmt::format("endpoint {}{}{}\n", d["endpoint"].GetString(), d["paused"].GetBool() ? " (paused)" : "",
                  d["kill_switch"].GetBool() ? " (KILL SWITCH ON: all traffic to production)" : "");
  for (const auto& v : d["variants"].GetArray()) {
    const int64_t version = v["version"].IsInt64() ? v["version"].GetInt64() : 0;  // null: the latest
    out += fmt::format("  {:<12} {}:{}\n", v["name"].GetString(), v["model"].GetString(),
                       version ? std::to_string(version) : "latest");
  }
  constexpr const char* kRow = "{:<12} {:>7} {:<18} {:>8} {:>7} {:>8} {:>8}\n";
  out += fmt::format(kRow, "variant", "share %", "position", "requests", "errors", "p50 ms", "p99 ms");
  for (const auto& v : d["variants"].GetArray()) {
    const std::string position = v.HasMember("position") ? v["position"].GetString() : v["mode"].GetString();
    out += fmt::format(kRow, v["name"].GetString(), fmt::format("{:.4g}", v["share"].GetDouble()), position,
                       v["requests"].GetUint64(), v["errors"].GetUint64(), Ms(v, "p50"), Ms(v, "p99"));
  }
  out += "(traffic since the last change to the spec)\n";
  return out;
}

// The server's error, in the words of this command's flags and arguments.
std::string InFlagTerms(const std::string& action, std::string message) {
  auto replace = [&](const std::string& from, const std::string& to) {
    for (size_t at = message.find(from); at != std::string::npos; at = message.find(from, at + to.size()))
      message.replace(at, from.size(), to);
  };
  if (action == "weight") {
    replace("weight: step must", "--step must");
    replace("weight: share must", "--share must");
    replace("moves by step", "moves by --step");
    replace("moves by share", "moves by --share");
  }
  if (action == "promote") replace("name the one to promote", "name it: vigil deploy promote ENDPOINT CANDIDATE");
  return message;
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
    if ((f.share < 0) == (f.step < -1)) return Fail(cmd, "give --share PERCENT (ab) or --step N (canary), not both");
    const std::string body =
        f.share >= 0 ? fmt::format("{{\"share\": {}}}", f.share) : fmt::format("{{\"step\": {}}}", f.step);
    reply = (*client)->Post("/v1/deployments/" + endpoint + "/candidates/" + f.candidate + "/weight", body, headers);
  } else {
    std::string body;
    if (!f.candidate.empty()) {
      vigil::JsonWriter w;
      w.StartObject();
      w.Field("candidate", f.candidate);
      w.EndObject();
      body = w.Take();
    }
    reply = (*client)->Post("/v1/deployments/" + endpoint + "/" + action, body, headers);
  }
  if (!reply.ok()) return Fail(cmd, reply.status().message());
  if (reply->status != 200) {
    return Fail(
        cmd, InFlagTerms(action, vigil::ErrorMessageOf(reply->body).value_or("HTTP " + std::to_string(reply->status))));
  }
  if (f.json || action == "delete") {
    std::printf("%s\n", reply->body.c_str());
  } else {
    std::printf("%s", StatusTable(reply->body).c_str());
  }
  return 0;
}

}  // namespace

Command AddDeploy(CLI::App& parent) {
  auto st = std::make_shared<DeployFlags>();
  CLI::App* deploy =
      parent.add_subcommand("deploy", "Change and read the endpoints of a running server (/v1/deployments).");
  deploy->require_subcommand(1);
  deploy->fallthrough();  // its subcommands inherit this: -u, --token, --json may come after them
  st->tls.Add(deploy);
  AddHttpUrl(deploy, st->url);
  deploy->add_option("--token", st->token, "Admin token (the server's --admin-token)")->envname("VIGIL_ADMIN_TOKEN");
  deploy->add_flag("--json", st->json, "Print the server's JSON instead of a table");
  CLI::App* d_apply = deploy->add_subcommand("apply", "Create or replace an endpoint from a spec file (YAML or JSON)");
  d_apply->add_option("-f,--file", st->file, "The spec")->required();
  d_apply->add_option("--endpoint", st->endpoint, "Endpoint name; default the file's name without extension");
  std::vector<CLI::App*> with_endpoint;
  for (const char* name : {"status", "delete", "pause", "resume"}) {
    CLI::App* sub =
        deploy->add_subcommand(name, std::string(name) == "status" ? "Per-variant traffic, errors and latency"
                                                                   : std::string(name) + " the endpoint");
    sub->add_option("endpoint", st->endpoint, "Endpoint")->required();
  }
  for (const char* name : {"promote", "rollback"}) {
    CLI::App* sub = deploy->add_subcommand(
        name, std::string(name) == "promote" ? "Make a candidate production"
                                             : "Set a candidate's share (default: every candidate's) to 0 at once");
    sub->add_option("endpoint", st->endpoint, "Endpoint")->required();
    sub->add_option("candidate", st->candidate, "Candidate (promote: needed when there are several)");
  }
  CLI::App* d_weight = deploy->add_subcommand("weight", "Set an ab candidate's share or a canary's step");
  d_weight->add_option("endpoint", st->endpoint, "Endpoint")->required();
  d_weight->add_option("candidate", st->candidate, "Candidate")->required();
  d_weight->add_option("--share", st->share, "Percent of traffic (ab)");
  d_weight->add_option("--step", st->step, "Index into the canary's steps (-1 = 0%)");
  return {deploy, [st, deploy] {
            for (CLI::App* sub : deploy->get_subcommands()) return Deploy(sub->get_name(), *st);
            return 2;
          }};
}

}  // namespace vigil::cli
