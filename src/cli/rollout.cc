// vigil rollout: the rollout controller of a running server (status,
// commands, benchmarks of the competing models), and two tools that need no server: plan (units and days to a
// decision) and simulate (the controller on synthetic arms).
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "protocol/json.h"
#include "protocol/json_writer.h"
#include "protocol/oip_json.h"
#include "rollout/plan.h"
#include "rollout/simulator.h"

namespace vigil::cli {
namespace {

struct RolloutFlags {
  TlsFlags tls;
  std::string url = "localhost:8000";
  std::string token;
  std::string endpoint;
  bool json = false;
  bool watch = false;
  double watch_for_s = 3600;
  bool full = false;
  // plan
  double baseline = 0.10, sd = 0, min_effect = 0.01, threshold = 0, alpha = 0.05, power = 0.8;
  std::string traffic = "20000/day";
  std::vector<double> shares{5, 25, 50};
  int64_t min_units = 1000, min_duration_s = 600, max_duration_s = 86400, interval_s = 3600;
  // simulate
  std::string metric = "bernoulli";
  double effect = 0, unit_sd = 0, predictions_per_unit = 1, max_days = 120;
  int experiments = 200;
  uint64_t seed = 1;
  bool per_request = false;
  // benchmark
  std::string since = "1h";
  std::string bench_metric;
  int64_t rows = 0;
  bool show = false, start = false;
  std::string contender;
  std::vector<double> steps;
  double wait_for_s = 600;
};

// Reading the server's reply without trusting its shape: a missing or
// mistyped member reads as empty.
const rapidjson::Value* Member(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject()) return nullptr;
  auto it = v.FindMember(key);
  return it == v.MemberEnd() ? nullptr : &it->value;
}
std::string Str(const rapidjson::Value& v, const char* key) {
  const auto* m = Member(v, key);
  return m && m->IsString() ? m->GetString() : "";
}
double Num(const rapidjson::Value& v, const char* key) {
  const auto* m = Member(v, key);
  return m && m->IsNumber() ? m->GetDouble() : 0;
}
bool Ended(const std::string& phase) { return phase == "Successful" || phase == "Failed" || phase == "Inconclusive"; }

std::string Duration(int64_t s) {
  if (s < 120) return fmt::format("{}s", s);
  if (s < 7200) return fmt::format("{}m{}s", s / 60, s % 60);
  if (s < 2 * 86400) return fmt::format("{}h{}m", s / 3600, s / 60 % 60);
  return fmt::format("{}d{}h", s / 86400, s / 3600 % 24);
}

struct Style {
  bool colour;
  std::string Paint(const std::string& text, const char* code) const {
    return colour ? fmt::format("\x1b[{}m{}\x1b[0m", code, text) : text;
  }
  std::string Phase(const std::string& phase) const {
    const char* code = phase == "Successful" ? "32" : phase == "Failed" ? "31" : phase == "Progressing" ? "34" : "33";
    const char* mark = phase == "Successful" ? "✔" : phase == "Failed" ? "✖" : phase == "Progressing" ? "◌" : "॥";
    return Paint(fmt::format("{} {}", mark, phase), code);
  }
};

// The rollout as `kubectl argo rollouts get rollout` shows one: the steps
// with marks, then the current analysis as a table.
std::string RolloutText(const rapidjson::Document& d, const Style& style) {
  std::string out;
  const std::string phase = Str(d, "phase");
  const auto step = static_cast<int64_t>(Num(d, "step"));
  out += fmt::format("{:<14}{}\n", "Endpoint:", Str(d, "endpoint"));
  out += fmt::format("{:<14}{} ({}:{})\n", "Candidate:", Str(d, "candidate"), Str(d, "model"),
                     static_cast<int64_t>(Num(d, "version")));
  out += fmt::format("{:<14}{}\n", "Status:", style.Phase(phase));
  out += fmt::format("{:<14}{}\n", "Message:", Str(d, "reason"));
  out += fmt::format("{:<14}{}/{} at {}% for {}\n", "Step:", step, static_cast<int64_t>(Num(d, "steps")),
                     Num(d, "share"), Duration(static_cast<int64_t>(Num(d, "time_at_step_s"))));
  if (const auto* m = Member(d, "policy_metric")) {
    out += fmt::format("{:<14}{} ({} is better, min effect {}), alpha {}\n", "Metric:", Str(*m, "name"),
                       Str(*m, "direction"), Num(*m, "min_effect"), Num(d, "alpha"));
  }
  if (!Ended(phase) && Member(d, "next_analysis_in_s")) {
    out += fmt::format("{:<14}in {}\n", "Next analysis:", Duration(static_cast<int64_t>(Num(d, "next_analysis_in_s"))));
  }
  out += "Steps:\n";
  if (Member(d, "shadow_first_share")) {
    const bool here = step == 0 && phase != "Successful";
    std::string mark = here ? (phase == "Failed" ? style.Paint("✖ ", "31") : style.Paint("◌ ", "34"))
                            : (step > 0 || phase == "Successful" ? style.Paint("✔ ", "32") : "  ");
    out += fmt::format("  {}0. shadow (copies of {}%, answers none){}\n", mark, Num(d, "shadow_first_share"),
                       here ? "   <- here" : "");
  }
  if (const auto* shares = Member(d, "step_shares"); shares && shares->IsArray()) {
    int64_t i = 1;
    for (const auto& s : shares->GetArray()) {
      const double share = s.IsNumber() ? s.GetDouble() : 0;
      std::string mark = "  ";
      if (i < step || (i == step && phase == "Successful")) {
        mark = style.Paint("✔ ", "32");
      } else if (i == step) {
        mark = phase == "Failed" ? style.Paint("✖ ", "31") : style.Paint("◌ ", "34");
      }
      out += fmt::format("  {}{}. {}%{}\n", mark, i, share, i == step ? "   <- here" : "");
      ++i;
    }
    out += fmt::format("  {}promote\n", phase == "Successful" ? style.Paint("✔ ", "32") : "  ");
  }
  const auto* analyses = Member(d, "analyses");
  if (!analyses || !analyses->IsArray() || analyses->Empty()) return out + "No analysis yet.\n";
  const rapidjson::Value& last = (*analyses)[0];
  const rapidjson::Value* e = Member(last, "evidence");
  if (!e) return out;
  out += fmt::format("Analysis #{} (step {}): {}\n", static_cast<int64_t>(Num(last, "id")),
                     static_cast<int64_t>(Num(last, "step")), Str(last, "verdict"));
  constexpr const char* kRow = "  {:<12} {:>8} {:>9} {:>11} {:>9} {:>8} {:>9}\n";
  out += fmt::format(kRow, "arm", "units", "mean", "std error", "awaiting", "errors", "p99 ms");
  if (const auto* arms = Member(*e, "arms"); arms && arms->IsArray()) {
    for (const auto& a : arms->GetArray()) {
      out += fmt::format(
          kRow, Str(a, "variant"), static_cast<int64_t>(Num(a, "units")), fmt::format("{:.4g}", Num(a, "mean")),
          fmt::format("{:.3g}", std::sqrt(Num(a, "variance"))), static_cast<int64_t>(Num(a, "awaiting_feedback")),
          fmt::format("{}/{}", static_cast<int64_t>(Num(a, "errors")), static_cast<int64_t>(Num(a, "requests"))),
          fmt::format("{:.3g}", Num(a, "latency_p99_ms")));
    }
  }
  if (const auto* p = Member(*e, "primary")) {
    const auto* ci = Member(*p, "ci");
    const bool has_ci = ci && ci->IsArray() && ci->Size() == 2 && (*ci)[0].IsNumber() && (*ci)[1].IsNumber();
    out += fmt::format("  improvement {:.4g}, always-valid interval [{}, {}], p {:.3g}, Λ {:.3g}\n",
                       Num(*p, "estimate"), has_ci ? fmt::format("{:.4g}", (*ci)[0].GetDouble()) : "?",
                       has_ci ? fmt::format("{:.4g}", (*ci)[1].GetDouble()) : "?", Num(*p, "p"), Num(*p, "lambda"));
  }
  if (const auto* sh = Member(*e, "shadow")) {
    out += fmt::format(
        "  shadow: {} of {} compared requests disagree ({:.3g}); p99 {:.3g} ms against {:.3g} ms; "
        "{}/{} copies failed\n",
        static_cast<int64_t>(Num(*sh, "disagreements")), static_cast<int64_t>(Num(*sh, "compared")),
        Num(*sh, "disagreement_rate"), Num(*sh, "shadow_p99_ms"), Num(*sh, "production_p99_ms"),
        static_cast<int64_t>(Num(*sh, "copy_errors")), static_cast<int64_t>(Num(*sh, "copies")));
  }
  if (const auto* srm = Member(*e, "srm")) {
    out += fmt::format("  sample ratio: always-valid p {:.3g} (chi2 {:.3g}, p {:.3g})\n", Num(*srm, "p"),
                       Num(*srm, "chi2"), Num(*srm, "chi2_p"));
  }
  if (const auto* g = Member(*e, "guardrails"); g && g->IsArray()) {
    for (const auto& r : g->GetArray()) {
      const std::string state = Str(r, "state");
      const char* code = state == "safe" ? "32" : state == "failed" ? "31" : "33";
      out +=
          fmt::format("  guardrail {:<15} margin {:<8} production {:<10.4g} candidate {:<10.4g} {}\n", Str(r, "name"),
                      Num(r, "margin"), Num(r, "production"), Num(r, "candidate"), style.Paint(state, code));
    }
  }
  return out;
}

StatusOr<std::unique_ptr<HttpClient>> Connect(const RolloutFlags& f) { return ConnectTo(f.url, f.tls); }

int StatusCommand(const RolloutFlags& f) {
  const std::string cmd = "rollout status";
  auto client = Connect(f);
  if (!client.ok()) return Fail(cmd, client.status().message());
  const bool tty = isatty(STDOUT_FILENO);
  const Style style{tty && !f.json};
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(f.watch_for_s * 1000));
  std::string shown;
  while (true) {
    auto reply = (*client)->Get("/v1/deployments/" + f.endpoint + "/rollout");
    if (!reply.ok()) return Fail(cmd, reply.status().message());
    if (reply->status != 200) {
      return Fail(cmd, ErrorMessageOf(reply->body).value_or("HTTP " + std::to_string(reply->status)));
    }
    rapidjson::Document d;
    if (Status s = ParseJson(reply->body, d); !s.ok() || !d.IsObject()) {
      return Fail(cmd, "the server's reply is not a rollout: " + reply->body.substr(0, 200));
    }
    const std::string text = f.json ? reply->body + "\n" : RolloutText(d, style);
    if (!f.watch) {
      std::fputs(text.c_str(), stdout);
      return 0;
    }
    if (text != shown) {  // piped: only what changed
      if (tty && !f.json) std::fputs("\x1b[H\x1b[2J", stdout);
      std::fputs(text.c_str(), stdout);
      std::fflush(stdout);
      shown = text;
    }
    const std::string phase = Str(d, "phase");
    if (Ended(phase)) return phase == "Successful" ? 0 : 1;
    if (std::chrono::steady_clock::now() >= until) return 0;
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
}

int CommandOn(const std::string& name, const RolloutFlags& f) {
  const std::string cmd = "rollout " + name;
  auto client = Connect(f);
  if (!client.ok()) return Fail(cmd, client.status().message());
  std::map<std::string, std::string> headers;
  if (!f.token.empty()) headers["Authorization"] = "Bearer " + f.token;
  const std::string body = name == "promote" && f.full ? "{\"full\": true}" : "";
  auto reply = (*client)->Post("/v1/deployments/" + f.endpoint + "/rollout/" + name, body, headers);
  if (!reply.ok()) return Fail(cmd, reply.status().message());
  if (reply->status != 200) {
    return Fail(cmd, ErrorMessageOf(reply->body).value_or("HTTP " + std::to_string(reply->status)));
  }
  rapidjson::Document d;
  if (f.json || !ParseJson(reply->body, d).ok() || !d.IsObject()) {
    std::printf("%s\n", reply->body.c_str());
  } else {
    std::fputs(RolloutText(d, Style{static_cast<bool>(isatty(STDOUT_FILENO))}).c_str(), stdout);
  }
  return 0;
}

// "20000/day", "1000/h", "5/s", or a plain number (per day).
StatusOr<double> UnitsPerDay(const std::string& text) {
  size_t slash = text.find('/');
  const std::string number = text.substr(0, slash);
  char* end = nullptr;
  const double n = std::strtod(number.c_str(), &end);
  if (number.empty() || end != number.c_str() + number.size() || !(n > 0) || !std::isfinite(n)) {
    return InvalidArgument("--traffic: a positive number of units per day, hour or second (20000/day), got '" + text +
                           "'");
  }
  const std::string per = slash == std::string::npos ? "day" : text.substr(slash + 1);
  if (per == "day" || per == "d") return n;
  if (per == "hour" || per == "h") return n * 24;
  if (per == "min" || per == "m") return n * 24 * 60;
  if (per == "s" || per == "second") return n * 86400;
  return InvalidArgument("--traffic: per day, hour, min or s, got '" + per + "'");
}

int PlanCommand(const RolloutFlags& f) {
  auto per_day = UnitsPerDay(f.traffic);
  if (!per_day.ok()) return Fail("rollout plan", per_day.status().message());
  PlanOptions o{.baseline = f.baseline,
                .sd = f.sd,
                .effect = f.min_effect,
                .threshold = f.threshold,
                .units_per_day = *per_day,
                .shares = f.shares,
                .alpha = f.alpha,
                .power = f.power,
                .min_units = f.min_units,
                .min_duration_s = f.min_duration_s};
  auto plan = PlanRollout(o);
  if (!plan.ok()) return Fail("rollout plan", plan.status().message());
  if (f.json) {
    JsonWriter w;
    w.StartObject();
    w.Field("days", plan->days);
    w.Field("units", plan->units);
    w.Key("steps");
    w.StartArray();
    for (const PlanStep& s : plan->steps) {
      w.StartObject();
      w.Field("share", s.share);
      w.Field("candidate_units", s.candidate_units);
      w.Field("production_units", s.production_units);
      w.Field("days", s.days);
      w.Field("decides", s.decides);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    std::printf("%s\n", w.Take().c_str());
    return 0;
  }
  std::printf(
      "To detect %s by %g (threshold %g) at alpha %g with power %g, %s units/day:\n",
      f.sd > 0 ? "a mean difference" : fmt::format("{:g} -> {:g}", f.baseline, f.baseline + f.min_effect).c_str(),
      f.min_effect, f.threshold, f.alpha, f.power, fmt::format("{:g}", *per_day).c_str());
  constexpr const char* kRow = "  {:>6} {:>12} {:>14} {:>8}  {}\n";
  std::fputs(fmt::format(kRow, "share", "candidate", "production", "days", "").c_str(), stdout);
  for (const PlanStep& s : plan->steps) {
    std::fputs(fmt::format(kRow, fmt::format("{:g}%", s.share), s.candidate_units, s.production_units,
                           fmt::format("{:.2f}", s.days),
                           s.decides ? "decides (promote on evidence)" : "ramp (min units, min duration)")
                   .c_str(),
               stdout);
  }
  std::printf("  total: %s units, %.2f days\n", fmt::format("{}", plan->units).c_str(), plan->days);
  return 0;
}

int SimulateCommand(const RolloutFlags& f) {
  SimulationOptions o;
  o.bernoulli = f.metric == "bernoulli";
  o.baseline = f.baseline;
  o.effect = f.effect;
  o.sd = f.sd > 0 ? f.sd : 1;
  o.unit_sd = f.unit_sd;
  o.predictions_per_unit = f.predictions_per_unit;
  auto per_day = UnitsPerDay(f.traffic);
  if (!per_day.ok()) return Fail("rollout simulate", per_day.status().message());
  o.units_per_day = *per_day;
  o.shares = f.shares;
  o.policy.interval_s = f.interval_s;
  o.policy.min_units = f.min_units;
  o.policy.min_duration_s = f.min_duration_s;
  o.policy.max_duration_s = f.max_duration_s;
  o.policy.alpha = f.alpha;
  o.policy.metric.min_effect = f.threshold;
  o.per_request = f.per_request;
  o.experiments = f.experiments;
  o.seed = f.seed;
  o.max_days = f.max_days;
  std::FILE* progress = isatty(STDERR_FILENO) ? stderr : nullptr;
  const auto start = std::chrono::steady_clock::now();
  auto r = Simulate(o, [&](int done) {
    if (progress) std::fprintf(progress, "\r%d/%d experiments", done, o.experiments);
  });
  if (progress) std::fputs("\n", progress);
  if (!r.ok()) return Fail("rollout simulate", r.status().message());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double n = r->experiments;
  if (f.json) {
    JsonWriter w;
    w.StartObject();
    w.Field("experiments", r->experiments);
    w.Field("promoted", r->promoted);
    w.Field("rolled_back", r->rolled_back);
    w.Field("inconclusive", r->inconclusive);
    w.Field("undecided", r->undecided);
    w.Field("sample_ratio_flags", r->sample_ratio_flags);
    w.Field("chi2_flags", r->chi2_flags);
    w.Field("promoted_share", r->promoted / n);
    w.Field("median_units_to_decision", r->median_units);
    w.Field("median_days_to_decision", r->median_days);
    w.Field("seconds", seconds);
    w.EndObject();
    std::printf("%s\n", w.Take().c_str());
    return 0;
  }
  std::printf("%d experiments (%s, effect %g, %s variance), %.1f s\n", r->experiments, f.metric.c_str(), f.effect,
              f.per_request ? "per-request" : "per-unit", seconds);
  std::printf("  promoted      %4d  (%.3f)\n", r->promoted, r->promoted / n);
  std::printf("  rolled back   %4d  (%.3f)\n", r->rolled_back, r->rolled_back / n);
  std::printf("  inconclusive  %4d  (%.3f; %d by sample ratio mismatch)\n", r->inconclusive, r->inconclusive / n,
              r->sample_ratio_flags);
  std::printf("  undecided     %4d\n", r->undecided);
  std::printf("  chi2 at srm_p alone would have flagged %d (%.3f) at some look\n", r->chi2_flags, r->chi2_flags / n);
  std::printf("  median to a decision: %.0f units, %.2f days\n", r->median_units, r->median_days);
  return 0;
}

// "90", "90s", "15m", "1h", "2d": seconds.
StatusOr<int64_t> Seconds(const std::string& text) {
  size_t used = 0;
  double n = 0;
  try {
    n = std::stod(text, &used);
  } catch (...) {
    used = 0;
  }
  const std::string unit = used ? text.substr(used) : "";
  const double scale = unit.empty() || unit == "s" ? 1
                       : unit == "m"               ? 60
                       : unit == "h"               ? 3600
                       : unit == "d"               ? 86400
                                                   : 0;
  if (!used || !(scale > 0) || !(n > 0) || n * scale > 365.0 * 86400) {
    return InvalidArgument("--since: a duration such as 90s, 15m, 1h or 2d (at most a year), got '" + text + "'");
  }
  return static_cast<int64_t>(std::ceil(n * scale));
}

std::string Fixed(const rapidjson::Value& v, const char* key, const char* spec = "{:.4f}") {
  const auto* m = Member(v, key);
  return m && m->IsNumber() ? fmt::format(fmt::runtime(spec), m->GetDouble()) : "-";
}

std::string Interval(const rapidjson::Value& v, const char* key) {
  const auto* m = Member(v, key);
  if (!m || !m->IsArray() || m->Size() != 2 || !(*m)[0].IsNumber() || !(*m)[1].IsNumber()) return "";
  return fmt::format("[{:+.4f}, {:+.4f}]", (*m)[0].GetDouble(), (*m)[1].GetDouble());
}

// A benchmark as a ranking table.
std::string BenchmarkText(const rapidjson::Value& r, const Style& style) {
  std::string out;
  out += fmt::format("{:<12}{}\n", "Endpoint:", Str(r, "endpoint"));
  out += fmt::format("{:<12}{}\n", "Trigger:", Str(r, "trigger"));
  if (!Str(r, "error").empty()) return out + style.Paint("Not made: " + Str(r, "error"), "31") + "\n";
  out += fmt::format("{:<12}{} of {} logged requests with inputs replayed{}\n",
                     "Traffic:", static_cast<int64_t>(Num(r, "replayable")), static_cast<int64_t>(Num(r, "sampled")),
                     Member(r, "truncated") && (*Member(r, "truncated")).IsTrue() ? " (cut short by a bound)" : "");
  out += fmt::format("{:<12}{} ({} is better), ranked by {}\n", "Metric:", Str(r, "metric"), Str(r, "direction"),
                     Str(r, "basis"));
  const std::string winner = Str(r, "winner");
  out += fmt::format(
      "{:<12}{}\n",
      "Winner:", winner.empty() ? style.Paint("none shown better than production", "33") : style.Paint(winner, "32"));
  if (!Str(r, "warning").empty()) out += style.Paint("Warning: " + Str(r, "warning"), "33") + "\n";
  constexpr const char* kRow = "  {:<4} {:<16} {:<14} {:>7} {:>8} {:>10} {:>28} {:>9} {:>8} {:<18}\n";
  out += fmt::format(kRow, "rank", "contender", "model", "rows", "labeled", "value", "vs production (interval)",
                     "disagree", "est.acc", "verdict");
  if (const auto* cs = Member(r, "contenders"); cs && cs->IsArray()) {
    for (const auto& c : cs->GetArray()) {
      const int64_t rank = static_cast<int64_t>(Num(c, "rank"));
      const std::string verdict = Str(c, "verdict");
      const char* code = verdict == "better" ? "32" : verdict == "worse" ? "31" : "0";
      std::string vs = Member(c, "difference_ci")
                           ? fmt::format("{:+.4f} {}", Num(c, "difference"), Interval(c, "difference_ci"))
                           : "";
      out += fmt::format(kRow, rank ? std::to_string(rank) : "-", Str(c, "name"),
                         fmt::format("{}:{}", Str(c, "model"), static_cast<int64_t>(Num(c, "version"))),
                         static_cast<int64_t>(Num(c, "rows")), static_cast<int64_t>(Num(c, "labeled_rows")),
                         Fixed(c, "value"), vs, Str(c, "role") == "production" ? "" : Fixed(c, "disagreement_rate"),
                         Fixed(c, "estimated_accuracy"), style.Paint(verdict, code));
      if (!Str(c, "skipped").empty()) out += "       not run: " + Str(c, "skipped") + "\n";
      if (!Str(c, "first_error").empty()) out += "       failed: " + Str(c, "first_error") + "\n";
    }
  }
  return out;
}

int BenchmarkCommand(const RolloutFlags& f) {
  const std::string cmd = "rollout benchmark";
  auto client = Connect(f);
  if (!client.ok()) return Fail(cmd, client.status().message());
  std::map<std::string, std::string> headers;
  if (!f.token.empty()) headers["Authorization"] = "Bearer " + f.token;
  const std::string path = "/v1/deployments/" + f.endpoint + "/benchmark";
  auto get = [&]() -> StatusOr<rapidjson::Document> {
    auto reply = (*client)->Get(path);
    if (!reply.ok()) return reply.status();
    if (reply->status != 200) {
      return FailedPrecondition(ErrorMessageOf(reply->body).value_or("HTTP " + std::to_string(reply->status)));
    }
    rapidjson::Document d;
    if (Status s = ParseJson(reply->body, d); !s.ok() || !d.IsObject()) {
      return Internal("the server's reply is not a benchmark: " + reply->body.substr(0, 200));
    }
    return d;
  };
  auto newest_id = [](const rapidjson::Document& d) -> int64_t {
    const auto* list = Member(d, "benchmarks");
    return list && list->IsArray() && !list->Empty() ? static_cast<int64_t>(Num((*list)[0], "id")) : 0;
  };
  auto before = get();
  if (!before.ok()) return Fail(cmd, before.status().message());
  if (!f.show) {
    auto since_s = Seconds(f.since);
    if (!since_s.ok()) return Fail(cmd, since_s.status().message());
    JsonWriter body;
    body.StartObject();
    body.Field("since_s", *since_s);
    if (!f.bench_metric.empty()) body.Field("metric", f.bench_metric);
    if (f.rows > 0) body.Field("max_rows", f.rows);
    body.EndObject();
    auto reply = (*client)->Post(path, body.Take(), headers);
    if (!reply.ok()) return Fail(cmd, reply.status().message());
    if (reply->status != 202) {
      return Fail(cmd, ErrorMessageOf(reply->body).value_or("HTTP " + std::to_string(reply->status)));
    }
    if (isatty(STDERR_FILENO)) std::fprintf(stderr, "benchmarking '%s'...\n", f.endpoint.c_str());
  }
  const int64_t old_id = f.show ? -1 : newest_id(*before);
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(f.wait_for_s * 1000));
  rapidjson::Document d;
  while (true) {
    auto now = get();
    if (!now.ok()) return Fail(cmd, now.status().message());
    d = std::move(*now);
    auto flag = [&](const char* key) {
      const auto* m = Member(d, key);
      return m && m->IsTrue();
    };
    const bool busy = flag("running") || flag("queued");
    if (newest_id(d) > old_id && (f.show || !busy)) break;
    if (std::chrono::steady_clock::now() >= until) {
      return Fail(
          cmd, fmt::format("no result within {} s (it goes on in the server; see it later with --show)", f.wait_for_s));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  const auto* list = Member(d, "benchmarks");
  if (!list || !list->IsArray() || list->Empty()) return Fail(cmd, "endpoint '" + f.endpoint + "' has no benchmark");
  const rapidjson::Value* result = Member((*list)[0], "result");
  if (!result) return Fail(cmd, "the server's reply has no result");
  if (f.json) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    result->Accept(writer);
    std::printf("%s\n", buffer.GetString());
  } else {
    std::fputs(BenchmarkText(*result, Style{static_cast<bool>(isatty(STDOUT_FILENO))}).c_str(), stdout);
  }
  if (!Str(*result, "error").empty()) return 1;
  if (!f.start) return 0;
  JsonWriter body;
  body.StartObject();
  if (!f.contender.empty()) body.Field("contender", f.contender);
  if (!f.steps.empty()) {
    body.Key("steps");
    body.StartArray();
    for (double s : f.steps) body.Double(s);
    body.EndArray();
  }
  body.EndObject();
  auto reply = (*client)->Post(path + "/start", body.Take(), headers);
  if (!reply.ok()) return Fail(cmd + " --start", reply.status().message());
  if (reply->status != 200) {
    return Fail(cmd + " --start", ErrorMessageOf(reply->body).value_or("HTTP " + std::to_string(reply->status)));
  }
  const std::string chosen = f.contender.empty() ? Str(*result, "winner") : f.contender;
  std::printf("Started a rollout of '%s' on '%s' (follow it: vigil rollout status %s --watch)\n", chosen.c_str(),
              f.endpoint.c_str(), f.endpoint.c_str());
  return 0;
}

}  // namespace

Command AddRollout(CLI::App& parent) {
  auto f = std::make_shared<RolloutFlags>();
  CLI::App* rollout = parent.add_subcommand(
      "rollout", "The rollout controller: status and commands on a running server; plan and simulate offline.");
  rollout->require_subcommand(1);
  rollout->fallthrough();
  f->tls.Add(rollout);
  AddHttpUrl(rollout, f->url);
  rollout->add_option("--token", f->token, "Admin token (the server's --admin-token)")->envname("VIGIL_ADMIN_TOKEN");
  rollout->add_flag("--json", f->json, "Print JSON instead of a table");
  CLI::App* status =
      rollout->add_subcommand("status", "Phase, steps and the current analysis of an endpoint's rollout");
  status->add_option("endpoint", f->endpoint, "Endpoint")->required();
  status->add_flag("-w,--watch", f->watch,
                   "Redraw as it changes until the rollout ends (exit 0 when promoted, 1 when failed or inconclusive)");
  status->add_option("--watch-for", f->watch_for_s, "Stop watching after this many seconds")->default_val(3600);
  for (const char* name : {"pause", "resume", "promote", "abort", "retry"}) {
    const std::string n(name);
    const std::string help = n == "pause"     ? "Stop the rollout's weight changes (the endpoint's spec is paused)"
                             : n == "resume"  ? "Go on (also after Inconclusive or Error, at the same step)"
                             : n == "promote" ? "Go to the next step now (--full: make the candidate production)"
                             : n == "abort"   ? "Roll the candidate back to share 0 (Failed)"
                                              : "Start the analysis again at this step (after Failed: from the first)";
    CLI::App* sub = rollout->add_subcommand(name, help);
    sub->add_option("endpoint", f->endpoint, "Endpoint")->required();
    if (n == "promote") sub->add_flag("--full", f->full, "Skip the remaining steps: production at once");
  }
  auto add_shared = [&](CLI::App* sub) {
    sub->add_option("--traffic", f->traffic, "New units (routing keys) per day: 20000/day, 1000/h, 5/s")
        ->default_val("20000/day");
    sub->add_option("--shares", f->shares, "The candidate's steps, percent")->delimiter(',')->default_str("5,25,50");
    sub->add_option("--alpha", f->alpha, "Error rate of the sequential tests")->default_val(0.05);
    sub->add_option("--min-units", f->min_units, "Per arm at a step before any verdict")->default_val(1000);
    sub->add_option("--min-duration-s", f->min_duration_s, "At a step before it may advance")->default_val(600);
    sub->add_option("--baseline", f->baseline, "Production's rate (or mean with --sd)")->default_val(0.10);
    sub->add_option("--sd", f->sd, "A unit's standard deviation, for a mean metric (0: a rate)")->default_val(0);
    sub->add_option("--threshold", f->threshold, "The spec's metric.min_effect: what the candidate must beat")
        ->default_val(0);
  };
  CLI::App* bench = rollout->add_subcommand(
      "benchmark", "Replay the endpoint's logged traffic through every candidate and loaded version, and rank them");
  bench->add_option("endpoint", f->endpoint, "Endpoint")->required();
  bench->add_option("--since", f->since, "The traffic to replay: the last 90s, 15m, 1h, 2d")->default_val("1h");
  bench->add_option("--metric", f->bench_metric,
                    "Scored against labels: accuracy, log_loss, brier, mae, mse, rmse (default: the rollout "
                    "block's, else accuracy or mae)");
  bench->add_option("--rows", f->rows, "Logged requests to replay, at most (default: the server's --benchmark-rows)");
  bench->add_flag("--show", f->show, "Show the newest benchmark instead of running one");
  bench->add_flag("--start", f->start,
                  "Then roll the winner out: a canary with a rollout block (steps 5,25,50 unless --steps)");
  bench->add_option("--contender", f->contender, "With --start: this contender instead of the winner");
  bench->add_option("--steps", f->steps, "With --start: the canary's steps, percent")->delimiter(',');
  bench->add_option("--wait-for", f->wait_for_s, "Seconds to wait for the result")->default_val(600);
  CLI::App* plan = rollout->add_subcommand("plan", "Units and days to a decision at the given alpha and power");
  add_shared(plan);
  plan->add_option("--min-effect", f->min_effect, "The improvement to detect, absolute")->default_val(0.01);
  plan->add_option("--power", f->power, "Chance of promoting a candidate better by --min-effect")->default_val(0.8);
  CLI::App* sim = rollout->add_subcommand(
      "simulate", "Run the controller on synthetic arms: the share promoted, power, units to a decision");
  add_shared(sim);
  sim->add_option("--metric", f->metric, "bernoulli (a rate) or normal (a mean)")
      ->check(CLI::IsMember({"bernoulli", "normal"}))
      ->default_val("bernoulli");
  sim->add_option("--effect", f->effect, "Candidate minus production, true (0: an A/A test)")->default_val(0);
  sim->add_option("--unit-sd", f->unit_sd, "Spread of a unit's own effect (logit scale for bernoulli)")->default_val(0);
  sim->add_option("--predictions-per-unit", f->predictions_per_unit, "Mean predictions per unit")->default_val(1);
  sim->add_option("--interval-s", f->interval_s, "Seconds between analyses")->default_val(3600);
  sim->add_option("--max-duration-s", f->max_duration_s, "At a step; then Inconclusive")->default_val(86400);
  sim->add_option("--experiments", f->experiments, "How many")->default_val(200);
  sim->add_option("--seed", f->seed, "Random seed")->default_val(1);
  sim->add_option("--max-days", f->max_days, "An experiment still running then counts as undecided")->default_val(120);
  sim->add_flag("--per-request", f->per_request,
                "Treat each prediction as its own unit (ignoring the routing key), to show what that costs");
  return {rollout, [f, rollout] {
            for (CLI::App* sub : rollout->get_subcommands()) {
              const std::string name = sub->get_name();
              if (name == "status") return StatusCommand(*f);
              if (name == "plan") return PlanCommand(*f);
              if (name == "simulate") return SimulateCommand(*f);
              if (name == "benchmark") return BenchmarkCommand(*f);
              return CommandOn(name, *f);
            }
            return 2;
          }};
}

}  // namespace vigil::cli
