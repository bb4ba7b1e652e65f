// vigil monitor: the drift table, quality per variant and firing alerts of
// a model or endpoint.
#include <fmt/format.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>

#include "cli/commands.h"
#include "core/clock.h"
#include "protocol/json.h"
#include "protocol/json_writer.h"
#include "protocol/oip_json.h"

namespace vigil::cli {
namespace {

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
  rapidjson::Document d, a, st;
  if (!vigil::ParseJson(*drift, d).ok() || !d.IsObject() || !vigil::ParseJson(*alerts, a).ok() || !a.IsObject() ||
      (status.ok() && !vigil::ParseJson(*status, st).ok())) {
    return Fail(cmd, "the server's monitoring replies are not the JSON objects this vigil reads");
  }
  if (f.json) {
    vigil::JsonWriter j;
    j.StartObject();
    j.Key("drift");
    j.Raw(*drift);
    j.Key("alerts");
    j.Raw(*alerts);
    j.Key("status");
    status.ok() ? j.Raw(*status) : j.Null();
    j.EndObject();
    std::printf("%s\n", j.Take().c_str());
    return 0;
  }
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
    out += "\nquality per variant (joined feedback since the spec took effect)\n";
    const bool has_quality = st.IsObject() && st.HasMember("quality") && st["quality"].IsObject();
    if (!has_quality || st["quality"].ObjectEmpty()) out += "  no feedback joined yet (or no store: --data-dir)\n";
    if (has_quality) {
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
      if (!vigil::ParseJson(*windows, qw).ok() || !qw.IsObject() || !qw.HasMember("windows") ||
          !qw["windows"].IsArray()) {
        return Fail(cmd, "the server's quality reply is not the JSON object this vigil reads");
      }
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
  // A dataset alert and its feature alerts share a `group` label: the
  // features are listed under their model version's dataset alert.
  auto line = [&](const rapidjson::Value& x, const char* indent) {
    std::string labels;
    for (const auto& l : x["labels"].GetObject()) {
      if (std::string_view(l.name.GetString()) != "group")
        labels += fmt::format(" {}={}", l.name.GetString(), l.value.GetString());
    }
    return fmt::format("{}{}{} since {}: {} {} (threshold {})\n", indent, x["alertname"].GetString(), labels,
                       Utc(x["since_ms"].GetInt64()), x["statistic"].GetString(), Num(x["value"]), Num(x["threshold"]));
  };
  auto label = [](const rapidjson::Value& x, const char* key) -> std::string {
    const auto& l = x["labels"];
    return l.HasMember(key) && l[key].IsString() ? l[key].GetString() : "";
  };
  std::map<std::string, std::vector<const rapidjson::Value*>> members;  // group, model, version -> feature alerts
  std::map<std::string, const rapidjson::Value*> heads;                 // the dataset alert of each group
  for (const auto& x : a["firing"].GetArray()) {
    const std::string group = label(x, "group");
    if (group.empty()) {
      out += line(x, "  ");
      continue;
    }
    const std::string key = group + " " + label(x, "model") + " v" + label(x, "version");
    if (group == x["alertname"].GetString()) {
      heads[key] = &x;
    } else {
      members[key].push_back(&x);
    }
  }
  for (auto& [key, list] : members) {
    std::sort(list.begin(), list.end(),
              [&](const auto* x, const auto* y) { return label(*x, "feature") < label(*y, "feature"); });
  }
  for (const auto& [key, head] : heads) {
    out += line(*head, "  ");
    for (const auto* m : members[key]) out += line(*m, "    ");
  }
  for (const auto& [key, list] : members) {
    if (heads.count(key)) continue;
    out += fmt::format("  {} (not firing): {} feature alert{}\n", key, list.size(), list.size() == 1 ? "" : "s");
    for (const auto* m : list) out += line(*m, "    ");
  }
  std::printf("%s", out.c_str());
  return 0;
}

}  // namespace

Command AddMonitor(CLI::App& parent) {
  auto st = std::make_shared<MonitorFlags>();
  CLI::App* monitor = parent.add_subcommand(
      "monitor", "Print the drift table, quality per variant and firing alerts of a model or endpoint.");
  monitor->add_option("name", st->name, "Model or endpoint")->required();
  st->tls.Add(monitor);
  AddHttpUrl(monitor, st->url);
  monitor->add_flag("--all", st->all, "Show every column, not only the drifted and the 12 closest to drifting");
  monitor->add_flag("--json", st->json, "Print the server's JSON documents instead of tables");
  return {monitor, [st] { return Monitor(*st); }};
}

}  // namespace vigil::cli
