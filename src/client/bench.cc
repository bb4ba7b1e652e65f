#include "client/bench.h"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "client/http_client.h"
#include "core/csv.h"
#include "protocol/json_writer.h"

namespace vigil {
namespace {

using BenchClock = std::chrono::steady_clock;

// Per-row shape of a model input: its metadata shape without the batch
// dimension when the model batches (first dimension -1).
struct InputLayout {
  TensorMetadata meta;
  bool batched = false;
  Shape row_shape;
  int64_t row_elements = 1;
};

StatusOr<std::vector<InputLayout>> Layouts(const ModelMetadata& m, int batch) {
  std::vector<InputLayout> out;
  for (const auto& t : m.inputs) {
    InputLayout l;
    l.meta = t;
    l.batched = !t.shape.empty() && t.shape[0] == -1;
    l.row_shape.assign(t.shape.begin() + (l.batched ? 1 : 0), t.shape.end());
    for (int64_t& d : l.row_shape) {
      if (d < 0) d = 1;  // a variable dimension: send one
      l.row_elements *= d;
    }
    if (t.datatype == DataType::kInvalid || t.datatype == DataType::kBytes || t.datatype == DataType::kFp16 ||
        t.datatype == DataType::kBf16) {
      return InvalidArgument("input '" + t.name + "' of model '" + m.name + "' has datatype " +
                             std::string(DataTypeName(t.datatype)) + ", which vigil bench cannot generate");
    }
    if (!l.batched && batch != 1) {
      return InvalidArgument("model '" + m.name + "' does not batch (input '" + t.name +
                             "' has no -1 batch dimension); use --batch 1");
    }
    out.push_back(std::move(l));
  }
  if (out.empty()) return InvalidArgument("model '" + m.name + "' has no inputs");
  return out;
}

void AppendAs(DataType type, double v, std::vector<uint8_t>& out) {
  auto put = [&out](auto x) {
    const size_t n = out.size();
    out.resize(n + sizeof(x));
    std::memcpy(out.data() + n, &x, sizeof(x));
  };
  switch (type) {
    case DataType::kBool:
      put(static_cast<uint8_t>(v != 0));
      break;
    case DataType::kUint8:
      put(static_cast<uint8_t>(v));
      break;
    case DataType::kUint16:
      put(static_cast<uint16_t>(v));
      break;
    case DataType::kUint32:
      put(static_cast<uint32_t>(v));
      break;
    case DataType::kUint64:
      put(static_cast<uint64_t>(v));
      break;
    case DataType::kInt8:
      put(static_cast<int8_t>(v));
      break;
    case DataType::kInt16:
      put(static_cast<int16_t>(v));
      break;
    case DataType::kInt32:
      put(static_cast<int32_t>(v));
      break;
    case DataType::kInt64:
      put(static_cast<int64_t>(v));
      break;
    case DataType::kFp64:
      put(v);
      break;
    default:
      put(static_cast<float>(v));
      break;
  }
}

// One row = the values of every input, concatenated in input order.
using Row = std::vector<double>;

StatusOr<std::vector<Row>> ReadCsv(const std::string& path, int64_t width, std::string* note) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = ParseCsv(text.str());
  if (!parsed.ok()) return InvalidArgument(path + " " + parsed.status().message());
  std::vector<Row> rows;
  size_t columns = 0;
  bool header = false;
  for (const CsvRow& line : *parsed) {
    Row row;
    bool numeric = true;
    for (size_t i = 0; i < line.cells.size() && static_cast<int64_t>(i) < width; ++i) {
      auto v = CsvNumber(line.cells[i]);
      if (!v.ok() || std::isnan(*v)) {
        numeric = false;
        break;
      }
      row.push_back(*v);
    }
    if (!numeric) {
      if (rows.empty() && !header) {  // a header row
        header = true;
        continue;
      }
      return InvalidArgument(
          fmt::format("{} line {}: a value in the first {} columns is not a number", path, line.line, width));
    }
    if (static_cast<int64_t>(line.cells.size()) < width) {
      return InvalidArgument(fmt::format("{} line {}: {} values, but the model's inputs need {} per row", path,
                                         line.line, line.cells.size(), width));
    }
    columns = line.cells.size();
    rows.push_back(std::move(row));
  }
  if (rows.empty()) return InvalidArgument(path + ": no data rows");
  *note = fmt::format("{} rows from {}", rows.size(), path);
  if (static_cast<int64_t>(columns) > width) *note += fmt::format(" (the first {} of {} columns)", width, columns);
  return rows;
}

// perf_analyzer's layout: {"data": [{"<input>": [values] | {"content": [values], "shape": [...]}}, ...]}
StatusOr<std::vector<Row>> ReadJson(const std::string& path, const std::vector<InputLayout>& layouts,
                                    std::string* note) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  rapidjson::Document d;
  d.Parse(ss.str().c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("data") || !d["data"].IsArray()) {
    return InvalidArgument(path + ": expected {\"data\": [{\"<input name>\": [values]}, ...]}");
  }
  std::vector<Row> rows;
  size_t index = 0;
  for (const auto& entry : d["data"].GetArray()) {
    if (!entry.IsObject()) return InvalidArgument(fmt::format("{}: data[{}] is not an object", path, index));
    // Each entry may hold several rows of every input; split them up.
    std::vector<std::vector<double>> values(layouts.size());
    for (size_t i = 0; i < layouts.size(); ++i) {
      const std::string& name = layouts[i].meta.name;
      if (!entry.HasMember(name.c_str()))
        return InvalidArgument(fmt::format("{}: data[{}] has no input '{}'", path, index, name));
      const rapidjson::Value* v = &entry[name.c_str()];
      if (v->IsObject() && v->HasMember("content")) v = &(*v)["content"];
      std::vector<const rapidjson::Value*> stack{v};
      while (!stack.empty()) {  // flatten nested arrays in order
        const rapidjson::Value* x = stack.back();
        stack.pop_back();
        if (x->IsArray()) {
          for (auto it = x->End(); it != x->Begin();) stack.push_back(&*--it);
        } else if (x->IsNumber() || x->IsBool()) {
          values[i].push_back(x->IsBool() ? (x->GetBool() ? 1.0 : 0.0) : x->GetDouble());
        } else {
          return InvalidArgument(
              fmt::format("{}: data[{}] input '{}' holds a value that is not a number", path, index, name));
        }
      }
      if (values[i].empty() || values[i].size() % static_cast<size_t>(layouts[i].row_elements) != 0) {
        return InvalidArgument(fmt::format("{}: data[{}] input '{}' has {} values, not a multiple of {} per row", path,
                                           index, name, values[i].size(), layouts[i].row_elements));
      }
    }
    const size_t n = values[0].size() / static_cast<size_t>(layouts[0].row_elements);
    for (size_t r = 0; r < n; ++r) {
      Row row;
      for (size_t i = 0; i < layouts.size(); ++i) {
        const auto w = static_cast<size_t>(layouts[i].row_elements);
        if (values[i].size() < (r + 1) * w) {
          return InvalidArgument(fmt::format("{}: data[{}] inputs hold different row counts", path, index));
        }
        row.insert(row.end(), values[i].begin() + static_cast<std::ptrdiff_t>(r * w),
                   values[i].begin() + static_cast<std::ptrdiff_t>((r + 1) * w));
      }
      rows.push_back(std::move(row));
    }
    ++index;
  }
  if (rows.empty()) return InvalidArgument(path + ": 'data' is empty");
  *note = fmt::format("{} rows from {}", rows.size(), path);
  return rows;
}

double Spread(const std::vector<double>& xs) {
  double mean = 0;
  for (double x : xs) mean += x;
  mean /= static_cast<double>(xs.size());
  double worst = 0;
  for (double x : xs) worst = std::max(worst, std::abs(x - mean));
  return mean > 0 ? worst / mean : (worst > 0 ? 1 : 0);
}

struct Window {
  BenchClock::time_point at;
  LoadRecorder::Snapshot snapshot;
  std::optional<ModelCounters> counters;
};

std::optional<ModelCounters> Scrape(HttpClient* metrics, const std::string& path, const BenchOptions& o) {
  if (!metrics) return std::nullopt;
  auto r = metrics->Get(path);
  if (!r.ok() || r->status != 200) return std::nullopt;
  return ParseModelCounters(r->body, o.model, o.version);
}

}  // namespace

ModelCounters ParseModelCounters(const std::string& exposition, const std::string& model, const std::string& version) {
  ModelCounters c;
  std::istringstream in(exposition);
  std::string line;
  const std::string model_label = "model=\"" + model + "\"";
  const std::string version_label = "version=\"" + version + "\"";
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.rfind("vigil_inference_", 0) != 0) continue;
    const auto brace = line.find('{');
    const auto close = line.find('}');
    if (brace == std::string::npos || close == std::string::npos) continue;
    const std::string_view labels(line.data() + brace, close - brace);
    if (labels.find(model_label) == std::string_view::npos) continue;
    if (!version.empty() && labels.find(version_label) == std::string_view::npos) continue;
    const std::string name = line.substr(0, brace);
    const double value = std::strtod(line.c_str() + close + 1, nullptr);
    if (name == "vigil_inference_requests_total") c.requests += value;
    if (name == "vigil_inference_queue_duration_seconds_sum") c.queue_sum += value;
    if (name == "vigil_inference_queue_duration_seconds_count") c.queue_count += value;
    if (name == "vigil_inference_compute_duration_seconds_sum") c.compute_sum += value;
    if (name == "vigil_inference_compute_duration_seconds_count") c.compute_count += value;
    if (name == "vigil_inference_batch_size_sum") c.batch_sum += value;
    if (name == "vigil_inference_batch_size_count") c.batch_count += value;
  }
  return c;
}

StatusOr<std::vector<InferCall>> BuildSamples(const ModelMetadata& metadata, int batch, const std::string& input_data,
                                              std::string* note) {
  if (batch < 1) return InvalidArgument("--batch must be at least 1");
  VIGIL_ASSIGN_OR_RETURN(auto layouts, Layouts(metadata, batch));
  int64_t width = 0;
  for (const auto& l : layouts) width += l.row_elements;

  std::vector<Row> rows;
  if (input_data.empty()) {
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> uniform(0, 1);
    rows.resize(256);
    for (auto& row : rows) {
      for (const auto& l : layouts) {
        const bool integer = l.meta.datatype != DataType::kFp32 && l.meta.datatype != DataType::kFp64;
        for (int64_t e = 0; e < l.row_elements; ++e)
          row.push_back(integer ? std::floor(uniform(rng) * 10) : uniform(rng));
      }
    }
    *note = "random data (256 rows)";
  } else {
    std::ifstream probe(input_data);
    if (!probe) return InvalidArgument("cannot read --input-data " + input_data);
    const bool json = input_data.size() >= 5 && input_data.substr(input_data.size() - 5) == ".json";
    if (json) {
      VIGIL_ASSIGN_OR_RETURN(rows, ReadJson(input_data, layouts, note));
    } else {
      VIGIL_ASSIGN_OR_RETURN(rows, ReadCsv(input_data, width, note));
    }
  }

  const size_t sample_count = std::clamp<size_t>(rows.size() / static_cast<size_t>(batch), 1, 512);
  std::vector<InferCall> samples(sample_count);
  size_t next_row = 0;
  for (auto& call : samples) {
    call.model = metadata.name;
    size_t offset = 0;
    for (const auto& l : layouts) {
      Tensor t;
      t.name = l.meta.name;
      t.datatype = l.meta.datatype;
      if (l.batched) t.shape.push_back(batch);
      t.shape.insert(t.shape.end(), l.row_shape.begin(), l.row_shape.end());
      call.inputs.push_back(std::move(t));
    }
    for (int b = 0; b < batch; ++b) {
      const Row& row = rows[next_row++ % rows.size()];
      offset = 0;
      for (size_t i = 0; i < layouts.size(); ++i) {
        for (int64_t e = 0; e < layouts[i].row_elements; ++e)
          AppendAs(layouts[i].meta.datatype, row[offset++], call.inputs[i].data);
      }
    }
  }
  return samples;
}

StatusOr<LevelResult> MeasureLevel(LoadEngine& engine, LoadRecorder& recorder, const LoadLevel& level,
                                   const BenchOptions& o, std::FILE* progress) {
  std::unique_ptr<HttpClient> metrics;
  std::string metrics_path = "/metrics";
  std::string metrics_note;
  {
    ClientOptions mo = o.client;  // TLS files and timeout as the target's
    if (!o.metrics_url.empty()) {
      mo.tls = false;
      VIGIL_RETURN_IF_ERROR(ParseServerUrl(o.metrics_url, &mo));
      const auto path_at =
          o.metrics_url.find('/', o.metrics_url.find("://") == std::string::npos ? 0 : o.metrics_url.find("://") + 3);
      if (path_at != std::string::npos) metrics_path = o.metrics_url.substr(path_at);
    } else {
      mo.host = o.client.host;
      mo.port = o.client.protocol == Protocol::kHttp ? o.client.port : 8000;
    }
    mo.timeout = std::chrono::milliseconds(2000);
    auto c = HttpClient::Connect(HttpOptionsFor(mo));
    if (c.ok()) {
      metrics = std::move(c).value();
    } else {
      metrics_note = "no /metrics at " + mo.host + ":" + std::to_string(mo.port) + " (set --metrics-url)";
    }
  }

  VIGIL_RETURN_IF_ERROR(engine.Start(level));
  std::vector<Window> windows;
  windows.push_back({BenchClock::now(), recorder.Take(), Scrape(metrics.get(), metrics_path, o)});
  const auto start = windows.front().at;
  const auto window = std::chrono::duration_cast<BenchClock::duration>(std::chrono::duration<double>(o.window_s));
  const auto limit =
      start + std::chrono::duration_cast<BenchClock::duration>(std::chrono::duration<double>(o.duration_s));
  const size_t k = static_cast<size_t>(std::max(1, o.stable_windows));
  bool stable = false;
  size_t first = 1;  // the first window is warm-up
  while (true) {
    std::this_thread::sleep_until(windows.back().at + window);
    windows.push_back({BenchClock::now(), recorder.Take(), Scrape(metrics.get(), metrics_path, o)});
    const size_t measured = windows.size() - 2;  // windows after the warm-up one
    if (measured >= k) {
      std::vector<double> rates, latencies;
      for (size_t i = windows.size() - k; i < windows.size(); ++i) {
        const auto d = windows[i].snapshot.latency - windows[i - 1].snapshot.latency;
        const double secs = std::chrono::duration<double>(windows[i].at - windows[i - 1].at).count();
        rates.push_back(static_cast<double>(d.total) / secs);
        latencies.push_back(d.Mean());
      }
      if (Spread(rates) <= o.stability && Spread(latencies) <= o.stability) {
        stable = true;
        first = windows.size() - 1 - k;
      }
    }
    if (progress) {
      const auto& a = windows[windows.size() - 2];
      const auto& b = windows.back();
      const auto d = b.snapshot.latency - a.snapshot.latency;
      const double secs = std::chrono::duration<double>(b.at - a.at).count();
      std::fprintf(progress, "\r\033[K%s: window %zu, %.0f req/s, p99 %.2f ms, errors %llu", level.Describe().c_str(),
                   windows.size() - 1, static_cast<double>(d.total) / secs, d.Quantile(0.99) / 1e6,
                   static_cast<unsigned long long>(b.snapshot.error_total() - a.snapshot.error_total()));
      std::fflush(progress);
    }
    if (stable || windows.back().at + window > limit) break;
  }
  engine.Stop(std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000)));
  if (progress) {
    std::fprintf(progress, "\r\033[K");
    std::fflush(progress);
  }

  // Report over the stable windows, or over all but the warm-up one.
  if (windows.size() <= 2) first = 0;
  const Window& a = windows[first];
  const Window& b = windows.back();
  const auto lat = b.snapshot.latency - a.snapshot.latency;
  LevelResult r;
  r.level = level;
  r.stable = stable;
  r.windows = static_cast<int>(windows.size() - 1);
  r.measured_s = std::chrono::duration<double>(b.at - a.at).count();
  r.requests = lat.total;
  r.total_requests = b.snapshot.latency.total;
  r.throughput = static_cast<double>(lat.total) / r.measured_s;
  r.infer_per_s = r.throughput * o.batch;
  r.p50_ms = lat.Quantile(0.50) / 1e6;
  r.p90_ms = lat.Quantile(0.90) / 1e6;
  r.p95_ms = lat.Quantile(0.95) / 1e6;
  r.p99_ms = lat.Quantile(0.99) / 1e6;
  r.mean_ms = lat.Mean() / 1e6;
  for (const auto& [kind, e] : b.snapshot.errors) {
    uint64_t before = 0;
    if (auto it = a.snapshot.errors.find(kind); it != a.snapshot.errors.end()) before = it->second.count;
    if (e.count > before) r.errors[kind] = {e.count - before, e.example};
  }
  for (const auto& [kind, e] : r.errors) r.error_total += e.count;
  if (a.counters && b.counters) {
    ServerSplit s;
    s.requests = b.counters->requests - a.counters->requests;
    const double qn = b.counters->queue_count - a.counters->queue_count;
    const double cn = b.counters->compute_count - a.counters->compute_count;
    const double bn = b.counters->batch_count - a.counters->batch_count;
    if (qn > 0) s.queue_ms = (b.counters->queue_sum - a.counters->queue_sum) / qn * 1e3;
    if (cn > 0) s.compute_ms = (b.counters->compute_sum - a.counters->compute_sum) / cn * 1e3;
    if (bn > 0) s.mean_batch = (b.counters->batch_sum - a.counters->batch_sum) / bn;
    if (s.requests > 0) {
      r.server = s;
    } else {
      r.server_note = "the server's /metrics show no requests for model '" + o.model + "'";
    }
  } else {
    r.server_note = metrics_note.empty() ? "could not read /metrics" : metrics_note;
  }
  return r;
}

StatusOr<LoadTarget> ProbeTarget(InferenceClient& client, const BenchOptions& o, std::vector<InferCall> samples) {
  // One request first: a model that rejects the data fails here, clearly.
  InferCall probe = samples.at(0);
  probe.model = o.model;
  VIGIL_ASSIGN_OR_RETURN(probe.version, ParseVersionString(o.version));
  if (auto reply = client.Infer(probe); !reply.ok()) return reply.status().WithContext("the first request failed");
  LoadTarget target;
  target.client = o.client;
  target.model = o.model;
  target.version = o.version;
  target.samples = std::move(samples);
  target.threads = o.threads;
  target.max_connections = o.max_connections;
  target.timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  return target;
}

StatusOr<BenchReport> RunBench(const BenchOptions& o, std::FILE* progress) {
  if (o.concurrency.empty() && o.rates.empty()) return InvalidArgument("give --concurrency or --rate");
  for (int c : o.concurrency)
    if (c < 1) return InvalidArgument("--concurrency values must be at least 1");
  for (double r : o.rates)
    if (!(r > 0)) return InvalidArgument("--rate values must be positive");
  if (!(o.window_s > 0) || !(o.duration_s >= o.window_s))
    return InvalidArgument("--duration must be at least one --window (both positive)");

  VIGIL_ASSIGN_OR_RETURN(auto client, ConnectInferenceClient(o.client));
  auto metadata = client->GetModelMetadata(o.model, o.version);
  if (!metadata.ok()) return metadata.status();
  BenchReport report;
  report.model = o.model;
  report.batch = o.batch;
  report.protocol = o.client.protocol == Protocol::kHttp ? (o.client.binary ? "http (binary)" : "http (JSON)")
                                                         : (o.client.binary ? "grpc (raw)" : "grpc (typed)");
  VIGIL_ASSIGN_OR_RETURN(auto samples, BuildSamples(*metadata, o.batch, o.input_data, &report.input_note));
  VIGIL_ASSIGN_OR_RETURN(LoadTarget target, ProbeTarget(*client, o, std::move(samples)));

  std::vector<LoadLevel> levels;
  for (int c : o.concurrency) levels.push_back({c, 0, false});
  if (o.concurrency.empty())
    for (double r : o.rates) levels.push_back({0, r, o.poisson});
  for (const auto& level : levels) {
    LoadRecorder recorder;
    VIGIL_ASSIGN_OR_RETURN(auto engine, MakeLoadEngine(target, &recorder));
    VIGIL_ASSIGN_OR_RETURN(LevelResult r, MeasureLevel(*engine, recorder, level, o, progress));
    report.levels.push_back(std::move(r));
  }
  return report;
}

std::string FormatBenchTable(const BenchReport& report) {
  std::string out = fmt::format("model {} over {}, {} row{} per request\ninput: {}\n", report.model, report.protocol,
                                report.batch, report.batch == 1 ? "" : "s", report.input_note);
  // Two tables, each within 80 columns: what the client saw, then the
  // server's split of the same windows.
  constexpr const char* kClientRow = "{:<17} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6}\n";
  out +=
      fmt::format(kClientRow, "load", "req/s", "infer/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "errors", "stable");
  for (const auto& r : report.levels) {
    out += fmt::format(kClientRow, r.level.Describe(), fmt::format("{:.0f}", r.throughput),
                       fmt::format("{:.0f}", r.infer_per_s), fmt::format("{:.3f}", r.p50_ms),
                       fmt::format("{:.3f}", r.p90_ms), fmt::format("{:.3f}", r.p95_ms),
                       fmt::format("{:.3f}", r.p99_ms), r.error_total, r.stable ? "yes" : "NO");
  }
  constexpr const char* kServerRow = "{:<17} {:>9} {:>10} {:>7}\n";
  out += fmt::format(kServerRow, "server split", "queue ms", "compute ms", "batch");
  for (const auto& r : report.levels) {
    if (r.server) {
      out += fmt::format(kServerRow, r.level.Describe(), fmt::format("{:.3f}", r.server->queue_ms),
                         fmt::format("{:.3f}", r.server->compute_ms), fmt::format("{:.1f}", r.server->mean_batch));
    } else {
      out += fmt::format(kServerRow, r.level.Describe(), "-", "-", "-");
    }
  }
  for (const auto& r : report.levels) {
    if (!r.stable)
      out += fmt::format(
          "{}: NOT STABLE after {} windows: they did not agree within the tolerance (raise --duration "
          "or --stability)\n",
          r.level.Describe(), r.windows);
  }
  for (const auto& r : report.levels) {
    for (const auto& [kind, e] : r.errors)
      out += fmt::format("{}: {} × {}, e.g. \"{}\"\n", r.level.Describe(), e.count, kind, e.example);
    if (!r.server && !r.server_note.empty()) {
      out += fmt::format("{}: no server split: {}\n", r.level.Describe(), r.server_note);
      break;
    }
  }
  out +=
      "latency: client-side, from the scheduled send time\n"
      "server split: from the server's /metrics, same windows (compute per batch)\n";
  return out;
}

std::string BenchJson(const BenchReport& report) {
  JsonWriter j;
  j.StartObject();
  j.Field("model", report.model);
  j.Field("protocol", report.protocol);
  j.Field("batch", static_cast<int64_t>(report.batch));
  j.Field("input", report.input_note);
  j.Key("levels");
  j.StartArray();
  for (const auto& r : report.levels) {
    j.StartObject();
    if (r.level.concurrency > 0) {
      j.Field("concurrency", static_cast<int64_t>(r.level.concurrency));
    } else {
      j.Field("rate", r.level.rate);
      j.Field("poisson", r.level.poisson);
    }
    j.Field("stable", r.stable);
    j.Field("windows", static_cast<int64_t>(r.windows));
    j.RoundedField("measured_s", r.measured_s, 3);
    j.Field("requests", static_cast<uint64_t>(r.requests));
    j.Field("total_requests", static_cast<uint64_t>(r.total_requests));
    j.RoundedField("throughput", r.throughput, 1);
    j.RoundedField("infer_per_sec", r.infer_per_s, 1);
    j.Key("latency_ms");
    j.StartObject();
    j.RoundedField("p50", r.p50_ms, 4);
    j.RoundedField("p90", r.p90_ms, 4);
    j.RoundedField("p95", r.p95_ms, 4);
    j.RoundedField("p99", r.p99_ms, 4);
    j.RoundedField("mean", r.mean_ms, 4);
    j.EndObject();
    j.Key("errors");
    j.StartObject();
    for (const auto& [kind, e] : r.errors) j.Field(kind, static_cast<uint64_t>(e.count));
    j.EndObject();
    if (r.server) {
      j.Key("server");
      j.StartObject();
      j.RoundedField("requests", r.server->requests, 0);
      j.RoundedField("queue_ms", r.server->queue_ms, 4);
      j.RoundedField("compute_ms", r.server->compute_ms, 4);
      j.RoundedField("mean_batch", r.server->mean_batch, 2);
      j.EndObject();
    }
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
  return j.Take();
}

}  // namespace vigil
