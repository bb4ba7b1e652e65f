#include "client/rate_schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "client/http_client.h"
#include "core/csv.h"
#include "core/latency_histogram.h"
#include "protocol/json_writer.h"

namespace vigil {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxPhases = 32;

StatusOr<double> Number(std::string_view text, std::string_view what) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !(v > 0))
    return InvalidArgument(fmt::format("--rate-schedule: {} '{}' is not a positive number", what, text));
  return v;
}

// The integer after `"key":` in a JSON body, if any.
std::optional<int> IntAfter(std::string_view body, std::string_view key) {
  const size_t at = body.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  size_t p = at + key.size();
  while (p < body.size() && (body[p] == ' ' || body[p] == ':')) ++p;
  int v = 0;
  const auto [end, ec] = std::from_chars(body.data() + p, body.data() + body.size(), v);
  if (ec != std::errc()) return std::nullopt;
  return v;
}

// The first output's values of a JSON reply.
std::vector<double> FirstOutput(std::string_view body) {
  std::vector<double> out;
  const size_t outputs = body.find("\"outputs\"");
  if (outputs == std::string_view::npos) return out;
  const size_t data = body.find("\"data\":[", outputs);
  if (data == std::string_view::npos) return out;
  const std::string rest(body.substr(data + 8, body.find(']', data) - data - 8));
  const char* p = rest.c_str();
  while (*p) {
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    if (end == p) break;
    out.push_back(v);
    p = end;
    while (*p == ',' || *p == ' ') ++p;
  }
  return out;
}

// Each data row's label from column `column` of a CSV with a header.
StatusOr<std::vector<int>> ReadLabels(const std::string& path, const std::string& column) {
  std::ifstream in(path);
  if (!in) return InvalidArgument("cannot read --input-data " + path);
  std::stringstream text;
  text << in.rdbuf();
  VIGIL_ASSIGN_OR_RETURN(auto rows, ParseCsv(text.str()));
  if (rows.empty()) return InvalidArgument(path + " is empty");
  const auto& header = rows[0].cells;
  const auto it = std::find(header.begin(), header.end(), column);
  if (it == header.end()) return InvalidArgument("--labels-column: " + path + " has no column '" + column + "'");
  const size_t index = static_cast<size_t>(it - header.begin());
  std::vector<int> labels;
  for (size_t r = 1; r < rows.size(); ++r) {
    if (index >= rows[r].cells.size())
      return InvalidArgument(fmt::format("{} line {}: no '{}'", path, rows[r].line, column));
    auto v = CsvNumber(rows[r].cells[index]);
    if (!v.ok())
      return InvalidArgument(
          fmt::format("{} line {}: label '{}' is not a number", path, rows[r].line, rows[r].cells[index]));
    labels.push_back(static_cast<int>(*v));
  }
  return labels;
}

// What the observer gathers for one phase (under the run's mutex).
struct PhaseTally {
  uint64_t sent = 0, ok = 0, in_time = 0, shed = 0, timed_out = 0, other = 0;
  std::map<int, uint64_t> in_time_by_rung, late_by_rung;
  std::map<int, uint64_t> correct_by_rung, scored_by_rung;
  std::string example_error;
  LatencyHistogram latency;
};

}  // namespace

StatusOr<std::vector<RatePhase>> ParseRateSchedule(std::string_view text) {
  std::vector<RatePhase> phases;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view part = text.substr(start, comma - start);
    const size_t colon = part.find(':');
    if (colon == std::string_view::npos)
      return InvalidArgument(fmt::format("--rate-schedule: '{}' is not RATE:SECONDS (e.g. 5x:20s or 300:10s)", part));
    std::string_view rate = part.substr(0, colon), secs = part.substr(colon + 1);
    if (!secs.empty() && secs.back() == 's') secs.remove_suffix(1);
    RatePhase p;
    VIGIL_ASSIGN_OR_RETURN(p.seconds, Number(secs, "duration"));
    if (p.seconds > 3600)
      return InvalidArgument(fmt::format("--rate-schedule: a phase of {} s is over an hour", p.seconds));
    if (!rate.empty() && rate.back() == 'x') {
      rate.remove_suffix(1);
      VIGIL_ASSIGN_OR_RETURN(p.multiple, Number(rate, "multiple"));
      if (p.multiple > 1000) return InvalidArgument("--rate-schedule: a multiple over 1000x");
    } else {
      VIGIL_ASSIGN_OR_RETURN(p.rate, Number(rate, "rate"));
      if (p.rate > 1e7) return InvalidArgument("--rate-schedule: a rate over 10,000,000 req/s");
    }
    phases.push_back(p);
    if (phases.size() > kMaxPhases) return InvalidArgument("--rate-schedule: at most 32 phases");
    start = comma + 1;
  }
  return phases;
}

StatusOr<ScheduleReport> RunRateSchedule(const BenchOptions& o, const ScheduleOptions& so, std::FILE* progress) {
  if (o.client.protocol != Protocol::kHttp)
    return InvalidArgument("--rate-schedule needs HTTP (the engine changes its rate while running)");
  if (so.phases.empty()) return InvalidArgument("--rate-schedule: no phases");
  if (!(so.deadline_ms > 0)) return InvalidArgument("--deadline-ms must be positive");
  if (!so.labels_column.empty() && o.input_data.empty())
    return InvalidArgument("--labels-column needs --input-data (a CSV with that column)");

  VIGIL_ASSIGN_OR_RETURN(auto client, ConnectInferenceClient(o.client));
  auto metadata = client->GetModelMetadata(o.model, o.version);
  if (!metadata.ok()) return metadata.status();
  ScheduleReport report;
  report.model = o.model;
  report.batch = o.batch;
  report.deadline_ms = so.deadline_ms;
  VIGIL_ASSIGN_OR_RETURN(auto samples, BuildSamples(*metadata, o.batch, o.input_data, &report.input_note));
  if (so.request_timeout_ms > 0) {
    for (auto& s : samples) s.parameters["timeout"] = static_cast<int64_t>(so.request_timeout_ms * 1000);
  }
  // Each sample's labels: BuildSamples takes the rows in order, `batch` at a time.
  std::vector<std::vector<int>> sample_labels;
  if (!so.labels_column.empty()) {
    VIGIL_ASSIGN_OR_RETURN(auto labels, ReadLabels(o.input_data, so.labels_column));
    if (labels.empty()) return InvalidArgument("--labels-column: no labelled rows");
    size_t next = 0;
    for (size_t s = 0; s < samples.size(); ++s) {
      std::vector<int>& l = sample_labels.emplace_back();
      for (int b = 0; b < o.batch; ++b) l.push_back(labels[next++ % labels.size()]);
    }
  }
  VIGIL_ASSIGN_OR_RETURN(LoadTarget target, ProbeTarget(*client, o, std::move(samples)));

  report.capacity = so.capacity;
  if (report.capacity <= 0) {
    LoadRecorder recorder;
    VIGIL_ASSIGN_OR_RETURN(auto engine, MakeLoadEngine(target, &recorder));
    VIGIL_ASSIGN_OR_RETURN(LevelResult r,
                           MeasureLevel(*engine, recorder, {so.capacity_concurrency, 0, false}, o, progress));
    report.capacity = r.throughput;
    report.capacity_measured = true;
    if (!(report.capacity > 0)) return Unavailable("measuring the capacity: no request succeeded");
  }

  // Phase boundaries, as offsets from the start.
  std::vector<double> ends;
  double total_s = 0;
  for (const auto& p : so.phases) ends.push_back(total_s += p.seconds);
  auto rate_of = [&](const RatePhase& p) { return p.multiple > 0 ? p.multiple * report.capacity : p.rate; };

  Mutex mu;
  std::vector<std::unique_ptr<PhaseTally>> tallies;
  for (size_t i = 0; i < so.phases.size(); ++i) tallies.push_back(std::make_unique<PhaseTally>());
  SteadyClock::time_point start{};
  std::atomic<bool> started{false};
  LoadRecorder recorder;
  const auto deadline_ns = static_cast<int64_t>(so.deadline_ms * 1e6);
  recorder.SetReplyObserver([&](size_t sample, int64_t latency_ns, unsigned status, std::string_view body) {
    if (!started.load(std::memory_order_acquire)) return;
    const double at =
        std::chrono::duration<double>(SteadyClock::now() - start).count() - static_cast<double>(latency_ns) * 1e-9;
    const size_t phase = std::min<size_t>(
        static_cast<size_t>(std::upper_bound(ends.begin(), ends.end(), at) - ends.begin()), ends.size() - 1);
    PhaseTally& t = *tallies[phase];
    std::optional<int> rung;
    std::vector<double> out;
    if (status == 200) {
      rung = IntAfter(body, "\"vigil.rung\"");
      if (!sample_labels.empty()) out = FirstOutput(body);
    }
    MutexLock lock(mu);
    ++t.sent;
    if (status == 200) {
      ++t.ok;
      t.latency.Record(latency_ns);
      const int r = rung.value_or(-1);
      if (latency_ns > deadline_ns) {
        ++t.late_by_rung[r];
        return;
      }
      ++t.in_time;
      ++t.in_time_by_rung[r];
      if (sample_labels.empty()) return;
      const std::vector<int>& labels = sample_labels[sample % sample_labels.size()];
      if (out.empty() || out.size() % labels.size()) return;
      const size_t classes = out.size() / labels.size();
      for (size_t row = 0; row < labels.size(); ++row) {
        const auto first = out.begin() + static_cast<std::ptrdiff_t>(row * classes);
        const int predicted =
            static_cast<int>(std::max_element(first, first + static_cast<std::ptrdiff_t>(classes)) - first);
        ++t.scored_by_rung[r];
        if (predicted == labels[row]) ++t.correct_by_rung[r];
      }
      return;
    }
    if (status == 429) {
      ++t.shed;
    } else if (status == 504 || status == 0) {
      ++t.timed_out;
    } else {
      ++t.other;
      if (t.example_error.empty()) t.example_error = fmt::format("HTTP {}: {}", status, body.substr(0, 200));
    }
  });

  // The endpoint's rung (its status) and the server's memory, polled.
  std::atomic<bool> polling{true};
  std::vector<std::pair<double, int>> rungs;   // (seconds, rung) per poll
  std::vector<std::pair<double, double>> rss;  // (seconds, MiB)
  VIGIL_ASSIGN_OR_RETURN(auto engine, MakeLoadEngine(target, &recorder));
  start = SteadyClock::now();
  started.store(true, std::memory_order_release);
  std::thread poller([&] {
    HttpClient::Options ho = HttpOptionsFor(o.client);
    ho.timeout = std::chrono::milliseconds(2000);
    auto c = HttpClient::Connect(ho);
    if (!c.ok()) return;
    bool endpoint = true;
    int tick = 0;
    while (polling.load()) {
      const double now_s = std::chrono::duration<double>(SteadyClock::now() - start).count();
      if (endpoint) {
        auto r = (*c)->Get("/v1/deployments/" + o.model + "/status");
        const auto rung = r.ok() && r->status == 200 ? IntAfter(r->body, "\"rung\"") : std::nullopt;
        if (!rung) {
          endpoint = false;
        } else {
          MutexLock lock(mu);
          rungs.emplace_back(now_s, *rung);
        }
      }
      if (tick++ % 5 == 0) {
        auto m = (*c)->Get("/metrics");
        if (m.ok()) {
          const size_t at = m->body.find("\nvigil_process_resident_memory_bytes ");
          if (at != std::string::npos) {
            MutexLock lock(mu);
            rss.emplace_back(now_s, std::atof(m->body.c_str() + at + 37) / (1024.0 * 1024.0));
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  if (Status s = engine->Start({0, rate_of(so.phases[0]), o.poisson}); !s.ok()) {
    polling = false;
    poller.join();
    return s;
  }
  for (size_t i = 0; i < so.phases.size(); ++i) {
    if (i > 0) {
      if (Status s = engine->SetRate(rate_of(so.phases[i])); !s.ok()) {
        engine->Stop(std::chrono::milliseconds(0));
        polling = false;
        poller.join();
        return s;
      }
    }
    if (progress) {
      std::fprintf(progress, "\r\033[Kphase %zu of %zu: %.0f req/s for %.0f s", i + 1, so.phases.size(),
                   rate_of(so.phases[i]), so.phases[i].seconds);
      std::fflush(progress);
    }
    std::this_thread::sleep_until(
        start + std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(ends[i])));
  }
  // What is still in flight gets the deadline's time (and a second) to answer.
  engine->Stop(std::chrono::milliseconds(static_cast<int64_t>(so.deadline_ms) + 1000));
  const int64_t abandoned = engine->InFlight();
  // Without traffic the endpoint keeps stepping down: wait for rung 0 (at most 60 s).
  const auto wait_until = SteadyClock::now() + std::chrono::seconds(60);
  while (SteadyClock::now() < wait_until) {
    {
      MutexLock lock(mu);
      if (rungs.empty() || rungs.back().second == 0) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  polling = false;
  poller.join();
  if (progress) {
    std::fprintf(progress, "\r\033[K");
    std::fflush(progress);
  }

  MutexLock lock(mu);
  const double last_start = ends.size() > 1 ? ends[ends.size() - 2] : 0;
  for (const auto& [t, rung] : rungs) {
    if (report.rung_timeline.empty() || report.rung_timeline.back().second != rung)
      report.rung_timeline.emplace_back(t, rung);
    if (!report.back_to_rung0_s && t >= last_start && rung == 0) report.back_to_rung0_s = t - last_start;
  }
  for (size_t i = 0; i < so.phases.size(); ++i) {
    const PhaseTally& t = *tallies[i];
    PhaseResult r;
    r.phase = so.phases[i];
    r.rate = rate_of(so.phases[i]);
    r.sent = t.sent + (i + 1 == so.phases.size() ? static_cast<uint64_t>(std::max<int64_t>(abandoned, 0)) : 0);
    r.ok = t.ok;
    r.in_time = t.in_time;
    r.shed = t.shed;
    r.timed_out = t.timed_out + (r.sent - t.sent);
    r.other_errors = t.other;
    r.example_error = t.example_error;
    r.goodput = static_cast<double>(t.in_time) / so.phases[i].seconds;
    r.in_time_share = r.sent ? static_cast<double>(t.in_time) / static_cast<double>(r.sent) : 0;
    const auto lat = t.latency.Take();
    r.p50_ms = lat.Quantile(0.5) / 1e6;
    r.p99_ms = lat.Quantile(0.99) / 1e6;
    r.in_time_by_rung = t.in_time_by_rung;
    r.late_by_rung = t.late_by_rung;
    uint64_t scored = 0, correct = 0;
    for (const auto& [rung, n] : t.scored_by_rung) {
      const uint64_t c = t.correct_by_rung.count(rung) ? t.correct_by_rung.at(rung) : 0;
      scored += n;
      correct += c;
      if (n) r.accuracy_by_rung[rung] = static_cast<double>(c) / static_cast<double>(n);
    }
    if (scored) r.accuracy = static_cast<double>(correct) / static_cast<double>(scored);
    const double from = i ? ends[i - 1] : 0, to = ends[i];
    for (const auto& [t2, mib] : rss)
      if (t2 >= from && t2 < to) r.max_rss_mib = std::max(r.max_rss_mib, mib);
    for (const auto& [t2, rung] : rungs)
      if (t2 >= from && t2 < to) r.max_rung = std::max(r.max_rung, rung);
    report.phases.push_back(std::move(r));
  }
  return report;
}

std::string FormatScheduleTable(const ScheduleReport& rep) {
  std::string out =
      fmt::format("{}: {} row(s) per request, deadline {} ms, capacity {:.1f} req/s ({}); {}\n", rep.model, rep.batch,
                  rep.deadline_ms, rep.capacity, rep.capacity_measured ? "measured" : "given", rep.input_note);
  out +=
      fmt::format("{:>6} {:>9} {:>7} {:>7} {:>7} {:>9} {:>7} {:>6} {:>6} {:>6} {:>9} {:>9}  {:<28} {:>8} {:>8} {:>5}\n",
                  "phase", "req/s", "sent", "ok", "intime", "goodput/s", "in%", "shed", "late", "other", "p50 ms",
                  "p99 ms", "in time by rung", "accuracy", "RSS MiB", "rung");
  for (size_t i = 0; i < rep.phases.size(); ++i) {
    const PhaseResult& p = rep.phases[i];
    std::string rungs;
    for (const auto& [r, n] : p.in_time_by_rung)
      rungs += fmt::format("{}{}:{:.0f}%", rungs.empty() ? "" : " ", r < 0 ? std::string("-") : std::to_string(r),
                           p.in_time ? 100.0 * static_cast<double>(n) / static_cast<double>(p.in_time) : 0.0);
    out += fmt::format(
        "{:>6} {:>9.1f} {:>7} {:>7} {:>7} {:>9.1f} {:>6.1f}% {:>6} {:>6} {:>6} {:>9.2f} {:>9.2f}  {:<28} {:>8} "
        "{:>8.0f} {:>5}\n",
        fmt::format("{}{}", p.phase.multiple > 0 ? fmt::format("{}x", p.phase.multiple) : "", ""), p.rate, p.sent, p.ok,
        p.in_time, p.goodput, 100 * p.in_time_share, p.shed, p.timed_out, p.other_errors, p.p50_ms, p.p99_ms, rungs,
        p.accuracy ? fmt::format("{:.4f}", *p.accuracy) : "-", p.max_rss_mib,
        p.max_rung < 0 ? std::string("-") : std::to_string(p.max_rung));
    if (!p.late_by_rung.empty()) {
      std::string late;
      for (const auto& [r, n] : p.late_by_rung)
        late += fmt::format("{}{}:{}", late.empty() ? "" : " ", r < 0 ? std::string("-") : std::to_string(r), n);
      out += fmt::format("{:>6}   answered after the deadline, by rung: {}\n", "", late);
    }
    for (const auto& [r, a] : p.accuracy_by_rung)
      out += fmt::format("{:>6}   accuracy at rung {}: {:.4f}\n", "", r < 0 ? std::string("-") : std::to_string(r), a);
    if (!p.example_error.empty()) out += fmt::format("{:>6}   e.g. {}\n", "", p.example_error);
  }
  if (!rep.rung_timeline.empty()) {
    std::string t;
    for (const auto& [s, r] : rep.rung_timeline) t += fmt::format("{}{:.1f}s:{}", t.empty() ? "" : " ", s, r);
    out += "rung over time: " + t + "\n";
    out += rep.back_to_rung0_s
               ? fmt::format("back to rung 0 {:.2f} s after the last phase began\n", *rep.back_to_rung0_s)
               : "never back to rung 0 within 60 s of the end\n";
  }
  return out;
}

std::string ScheduleJson(const ScheduleReport& rep) {
  JsonWriter j;
  j.StartObject();
  j.Field("model", rep.model);
  j.Field("batch", static_cast<int64_t>(rep.batch));
  j.Field("capacity", rep.capacity);
  j.Field("capacity_measured", rep.capacity_measured);
  j.Field("deadline_ms", rep.deadline_ms);
  j.Key("phases");
  j.StartArray();
  for (const PhaseResult& p : rep.phases) {
    j.StartObject();
    if (p.phase.multiple > 0) j.Field("multiple", p.phase.multiple);
    j.Field("seconds", p.phase.seconds);
    j.Field("rate", p.rate);
    j.Field("sent", p.sent);
    j.Field("ok", p.ok);
    j.Field("in_time", p.in_time);
    j.Field("shed", p.shed);
    j.Field("timed_out", p.timed_out);
    j.Field("other_errors", p.other_errors);
    j.Field("goodput", p.goodput);
    j.Field("in_time_share", p.in_time_share);
    j.Field("p50_ms", p.p50_ms);
    j.Field("p99_ms", p.p99_ms);
    j.Key("late_by_rung");
    j.StartObject();
    for (const auto& [r, n] : p.late_by_rung) j.Field(r < 0 ? std::string("none") : std::to_string(r), n);
    j.EndObject();
    j.Key("in_time_by_rung");
    j.StartObject();
    for (const auto& [r, n] : p.in_time_by_rung) j.Field(r < 0 ? std::string("none") : std::to_string(r), n);
    j.EndObject();
    if (p.accuracy) j.Field("accuracy", *p.accuracy);
    j.Key("accuracy_by_rung");
    j.StartObject();
    for (const auto& [r, a] : p.accuracy_by_rung) j.Field(r < 0 ? std::string("none") : std::to_string(r), a);
    j.EndObject();
    j.Field("max_rss_mib", p.max_rss_mib);
    j.Field("max_rung", static_cast<int64_t>(p.max_rung));
    j.EndObject();
  }
  j.EndArray();
  if (rep.back_to_rung0_s) j.Field("back_to_rung0_s", *rep.back_to_rung0_s);
  j.EndObject();
  return j.Take();
}

}  // namespace vigil
