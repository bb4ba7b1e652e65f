#include "client/profile.h"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <set>
#include <tuple>

#include "client/http_client.h"
#include "protocol/json_writer.h"

namespace vigil {
namespace {

using ProfileClock = std::chrono::steady_clock;
using Knobs = std::tuple<int, int64_t, int>;  // max_batch_size, delay_us, instances

double Since(ProfileClock::time_point t) { return std::chrono::duration<double>(ProfileClock::now() - t).count(); }

// The knobs that matter: without batching the delay means nothing.
Knobs Canonical(Knobs k) {
  if (std::get<0>(k) <= 1) std::get<1>(k) = 0;
  return k;
}

}  // namespace

StatusOr<std::string> ConfigOverride(const std::string& config_json, int max_batch_size, int64_t delay_us,
                                     int instances) {
  rapidjson::Document d;
  d.Parse(config_json.c_str());
  if (d.HasParseError() || !d.IsObject()) return InvalidArgument("the model config is not a JSON object");
  auto& a = d.GetAllocator();
  // Fields the config endpoint adds that config.yaml does not have.
  for (const char* derived : {"name", "platform", "batching"}) d.RemoveMember(derived);
  if (!d.HasMember("max_batch_size")) d.AddMember("max_batch_size", 0, a);
  d["max_batch_size"].SetInt(max_batch_size);
  if (!d.HasMember("instances")) d.AddMember("instances", 1, a);
  d["instances"].SetInt(instances);
  if (max_batch_size > 0) {
    if (!d.HasMember("dynamic_batching")) d.AddMember("dynamic_batching", rapidjson::Value(rapidjson::kObjectType), a);
    auto& db = d["dynamic_batching"];
    if (db.HasMember("max_queue_delay_us")) {
      db["max_queue_delay_us"].SetInt64(delay_us);
    } else {
      db.AddMember("max_queue_delay_us", delay_us, a);
    }
    if (db.HasMember("preferred_batch_sizes") && db["preferred_batch_sizes"].IsArray()) {
      auto& pb = db["preferred_batch_sizes"];
      for (auto it = pb.Begin(); it != pb.End();) {
        if (it->GetInt() > max_batch_size) {
          it = pb.Erase(it);
        } else {
          ++it;
        }
      }
    }
  } else {
    d.RemoveMember("dynamic_batching");
  }
  if (d.HasMember("warmup") && d["warmup"].IsObject() && d["warmup"].HasMember("batch_size")) {
    auto& b = d["warmup"]["batch_size"];
    b.SetInt(std::max(1, std::min(b.GetInt(), std::max(1, max_batch_size))));
  }
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> writer(out);
  d.Accept(writer);
  return std::string(out.GetString(), out.GetSize());
}

StatusOr<ProfileReport> RunProfile(const ProfileOptions& o, std::FILE* progress) {
  const auto start = ProfileClock::now();
  if (!(o.latency_budget_ms > 0)) return InvalidArgument("--latency-budget must be positive (milliseconds of p99)");
  if (!(o.time_budget_s > 0)) return InvalidArgument("--time-budget must be positive (seconds)");
  for (int b : o.max_batch_sizes)
    if (b < 1) return InvalidArgument("--max-batch-sizes values must be at least 1");
  for (int64_t d : o.delays_us)
    if (d < 0) return InvalidArgument("--delays-us values must be non-negative");
  for (int i : o.instances)
    if (i < 1) return InvalidArgument("--instances values must be at least 1");

  HttpClient::Options ho = HttpOptionsFor(o.control);
  ho.timeout = std::chrono::milliseconds(60000);
  VIGIL_ASSIGN_OR_RETURN(auto http, HttpClient::Connect(ho));
  VIGIL_ASSIGN_OR_RETURN(HttpReply config, http->Get("/v2/models/" + o.model + "/config"));
  if (config.status != 200) {
    return NotFound(ErrorMessageOf(config.body).value_or("model '" + o.model + "' not found"));
  }
  ClientOptions control = o.control;
  control.protocol = Protocol::kHttp;
  VIGIL_ASSIGN_OR_RETURN(auto admin, ConnectInferenceClient(control));
  VIGIL_ASSIGN_OR_RETURN(auto client, ConnectInferenceClient(o.client));
  VIGIL_ASSIGN_OR_RETURN(ModelMetadata metadata, client->GetModelMetadata(o.model));

  ProfileReport report;
  report.model = o.model;
  report.latency_budget_ms = o.latency_budget_ms;
  report.time_budget_s = o.time_budget_s;
  report.base_config_json = config.body;
  rapidjson::Document base;
  base.Parse(config.body.c_str());
  const int base_mbs = base.HasMember("max_batch_size") ? base["max_batch_size"].GetInt() : 0;

  std::string note;
  VIGIL_ASSIGN_OR_RETURN(auto samples, BuildSamples(metadata, o.batch, o.input_data, &note));
  LoadTarget target;
  target.client = o.client;
  target.model = o.model;
  target.samples = std::move(samples);

  BenchOptions level_options;
  level_options.client = o.client;
  level_options.model = o.model;
  level_options.batch = o.batch;
  level_options.window_s = o.window_s;
  level_options.duration_s = o.level_limit_s;
  level_options.stable_windows = 2;
  level_options.stability = 0.15;
  level_options.metrics_url = std::string(o.control.tls ? "https://" : "http://") + o.control.host + ":" +
                              std::to_string(o.control.port) + "/metrics";
  level_options.timeout_s = std::max(5.0, o.latency_budget_ms * 20 / 1000);

  std::set<Knobs> tried;
  // Seconds one concurrency level may take, with the load before it.
  const double level_cost = o.level_limit_s + 0.5;
  // The coarse grid gets 70% of the budget so that refinement always runs.
  double phase_end_s = o.refine ? 0.7 * o.time_budget_s : o.time_budget_s;
  auto time_left = [&] { return phase_end_s - Since(start); };

  // Measures one concurrency level.
  auto measure = [&](int c) -> StatusOr<LevelResult> {
    LoadRecorder recorder;
    VIGIL_ASSIGN_OR_RETURN(auto engine, MakeLoadEngine(target, &recorder));
    return MeasureLevel(*engine, recorder, {c, 0, false}, level_options, nullptr);
  };

  auto run_trial = [&](Knobs k, const std::string& phase) -> Status {
    k = Canonical(k);
    if (base_mbs == 0) k = {0, 0, std::get<2>(k)};  // a model that cannot batch: instances only
    if (!tried.insert(k).second) return Status::Ok();
    ProfileTrial t;
    std::tie(t.max_batch_size, t.delay_us, t.instances) = k;
    t.phase = phase;
    if (time_left() < level_cost) {
      t.note = "not tried: time budget";
      report.out_of_time = true;
      report.trials.push_back(t);
      return Status::Ok();
    }
    VIGIL_ASSIGN_OR_RETURN(std::string cfg, ConfigOverride(config.body, t.max_batch_size, t.delay_us, t.instances));
    if (Status s = admin->LoadModel(o.model, cfg); !s.ok()) {
      t.note = "load failed: " + s.message();
      report.trials.push_back(t);
      return Status::Ok();
    }
    t.measured = true;
    // Batching needs requests to batch: start near the batch size, and step
    // down first if even that breaks the budget.
    int c = std::clamp(t.max_batch_size / 2, 1, o.max_concurrency);
    double last_best = 0;
    int flat_steps = 0;
    bool stepping_down = false;
    while (c <= o.max_concurrency) {
      if (time_left() < level_cost) {
        t.note = "stopped at concurrency " + std::to_string(c) + ": time budget";
        report.out_of_time = true;
        break;
      }
      if (progress) {
        std::fprintf(progress, "\r\033[Kprofile %s: max_batch_size %d, delay %lld us, instances %d, concurrency %d",
                     o.model.c_str(), t.max_batch_size, static_cast<long long>(t.delay_us), t.instances, c);
        std::fflush(progress);
      }
      VIGIL_ASSIGN_OR_RETURN(LevelResult r, measure(c));
      const bool over = r.error_total > 0 || r.p99_ms > o.latency_budget_ms;
      if (over) {
        if (t.best_concurrency == 0 && c > 1) {  // nothing fits yet: try less
          stepping_down = true;
          c /= 2;
          continue;
        }
        t.note = r.error_total > 0 ? fmt::format("stopped at concurrency {}: {} errors", c, r.error_total)
                                   : fmt::format("stopped at concurrency {}: p99 {:.2f} ms over budget", c, r.p99_ms);
        break;
      }
      if (r.throughput > t.throughput) {
        t.throughput = r.throughput;
        t.infer_per_s = r.infer_per_s;
        t.p99_ms = r.p99_ms;
        t.best_concurrency = c;
      }
      if (stepping_down) {
        t.note = fmt::format("p99 over budget above concurrency {}", c);
        break;
      }
      // Throughput no longer grows: more concurrency only adds latency.
      flat_steps = r.throughput < last_best * 1.05 ? flat_steps + 1 : 0;
      last_best = std::max(last_best, r.throughput);
      if (flat_steps >= 2) {
        t.note = fmt::format("throughput flat from concurrency {}", c / 4);
        break;
      }
      c *= 2;
    }
    if (t.note.empty()) t.note = "reached --max-concurrency";
    report.trials.push_back(t);
    return Status::Ok();
  };

  auto best_index = [&]() -> std::optional<size_t> {
    std::optional<size_t> best;
    for (size_t i = 0; i < report.trials.size(); ++i) {
      const auto& t = report.trials[i];
      if (t.measured && t.best_concurrency > 0 && (!best || t.throughput > report.trials[*best].throughput)) best = i;
    }
    return best;
  };

  Status status = run_trial({1, 0, 1}, "baseline");
  if (status.ok() && !report.trials.empty() && report.trials[0].measured) report.baseline = 0;
  for (int mbs : o.max_batch_sizes) {
    for (int64_t delay : o.delays_us) {
      for (int inst : o.instances) {
        if (status.ok()) status = run_trial({mbs, delay, inst}, "coarse");
      }
    }
  }
  phase_end_s = o.time_budget_s;
  if (status.ok() && o.refine) {
    if (auto b = best_index()) {
      const ProfileTrial best = report.trials[*b];
      const int m = best.max_batch_size;
      const int64_t d = best.delay_us;
      const int i = best.instances;
      const std::vector<Knobs> around = {{std::max(1, m / 2), d, i},   {std::min(1024, m * 2), d, i}, {m, d / 2, i},
                                         {m, d == 0 ? 100 : d * 2, i}, {m, d, std::max(1, i - 1)},    {m, d, i + 1}};
      for (const auto& k : around) {
        if (status.ok()) status = run_trial(k, "refine");
      }
    }
  }
  if (progress) {
    std::fprintf(progress, "\r\033[K");
    std::fflush(progress);
  }
  // Put the model back as its config.yaml says, whatever happened.
  const Status restored = admin->LoadModel(o.model, std::nullopt);
  VIGIL_RETURN_IF_ERROR(status);
  if (!restored.ok()) return restored.WithContext("restoring the model's own config");
  report.best = best_index();
  report.elapsed_s = Since(start);
  return report;
}

std::string FormatProfileTable(const ProfileReport& r) {
  std::string out = fmt::format("model {}: highest throughput with p99 <= {} ms ({:.0f} s of a {:.0f} s budget{})\n",
                                r.model, r.latency_budget_ms, r.elapsed_s, r.time_budget_s,
                                r.out_of_time ? ", some configurations not tried" : "");
  out += fmt::format("{:<9} {:>14} {:>9} {:>9} {:>12} {:>10} {:>10} {:>8}  {}\n", "phase", "max_batch_size", "delay_us",
                     "instances", "concurrency", "req/s", "infer/s", "p99 ms", "note");
  for (size_t i = 0; i < r.trials.size(); ++i) {
    const auto& t = r.trials[i];
    const std::string mark = r.best && *r.best == i ? " <- best" : "";
    if (!t.measured || t.best_concurrency == 0) {
      out += fmt::format("{:<9} {:>14} {:>9} {:>9} {:>12} {:>10} {:>10} {:>8}  {}{}\n", t.phase, t.max_batch_size,
                         t.delay_us, t.instances, "-", "-", "-", "-", t.note, mark);
      continue;
    }
    out +=
        fmt::format("{:<9} {:>14} {:>9} {:>9} {:>12} {:>10.0f} {:>10.0f} {:>8.2f}  {}{}\n", t.phase, t.max_batch_size,
                    t.delay_us, t.instances, t.best_concurrency, t.throughput, t.infer_per_s, t.p99_ms, t.note, mark);
  }
  if (!r.best) {
    out += "no configuration met the latency budget\n";
  } else if (r.baseline && r.trials[*r.baseline].throughput > 0) {
    const auto& b = r.trials[*r.best];
    const auto& u = r.trials[*r.baseline];
    out += fmt::format("best: {:.0f} req/s vs {:.0f} unbatched at the same p99 budget ({:.2f}x)\n", b.throughput,
                       u.throughput, b.throughput / u.throughput);
  }
  return out;
}

std::string RecommendedConfigYaml(const ProfileReport& r) {
  if (!r.best) return "";
  const auto& t = r.trials[*r.best];
  std::string out = fmt::format(
      "# vigil profile: {} with p99 <= {} ms: {:.0f} req/s ({:.0f} rows/s), p99 {:.2f} ms at "
      "concurrency {}\n",
      r.model, r.latency_budget_ms, t.throughput, t.infer_per_s, t.p99_ms, t.best_concurrency);
  if (r.baseline && r.trials[*r.baseline].throughput > 0) {
    out +=
        fmt::format("# unbatched (max_batch_size 1, one instance): {:.0f} req/s\n", r.trials[*r.baseline].throughput);
  }
  out += fmt::format("max_batch_size: {}\n", t.max_batch_size);
  if (t.max_batch_size > 0) out += fmt::format("dynamic_batching:\n  max_queue_delay_us: {}\n", t.delay_us);
  out += fmt::format("instances: {}\n", t.instances);
  return out;
}

std::string ProfileJson(const ProfileReport& r) {
  JsonWriter j;
  j.StartObject();
  j.Field("model", r.model);
  j.Field("latency_budget_ms", r.latency_budget_ms);
  j.Field("time_budget_s", r.time_budget_s);
  j.RoundedField("elapsed_s", r.elapsed_s, 1);
  j.Field("out_of_time", r.out_of_time);
  j.Key("trials");
  j.StartArray();
  for (const auto& t : r.trials) {
    j.StartObject();
    j.Field("phase", t.phase);
    j.Field("max_batch_size", static_cast<int64_t>(t.max_batch_size));
    j.Field("max_queue_delay_us", static_cast<int64_t>(t.delay_us));
    j.Field("instances", static_cast<int64_t>(t.instances));
    j.Field("measured", t.measured);
    j.Field("concurrency", static_cast<int64_t>(t.best_concurrency));
    j.RoundedField("throughput", t.throughput, 1);
    j.RoundedField("infer_per_sec", t.infer_per_s, 1);
    j.RoundedField("p99_ms", t.p99_ms, 4);
    j.Field("note", t.note);
    j.EndObject();
  }
  j.EndArray();
  if (r.best) j.Field("best", static_cast<int64_t>(*r.best));
  if (r.baseline) j.Field("baseline", static_cast<int64_t>(*r.baseline));
  j.Field("recommended_config", RecommendedConfigYaml(r));
  j.EndObject();
  return j.Take();
}

}  // namespace vigil
