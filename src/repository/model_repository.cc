#include "repository/model_repository.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <future>
#include <set>
#include <sstream>

#include "core/logging.h"
#include "core/thread_name.h"
#include "monitoring/reference.h"
#include "repository/ensemble_run.h"

namespace vigil {
namespace fs = std::filesystem;

namespace {

constexpr const char* kReservedFolders[] = {"deployments"};

bool IsModelFolder(const fs::directory_entry& e) {
  if (!e.is_directory()) return false;
  const std::string name = e.path().filename().string();
  if (name.empty() || name[0] == '.' || name[0] == '_') return false;
  for (const char* r : kReservedFolders) {
    if (name == r) return false;
  }
  return true;
}

bool ParseVersion(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  *out = std::stoll(s);
  return *out > 0;
}

StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string FileFingerprint(const fs::path& p) {
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  const auto mtime = fs::last_write_time(p, ec);
  return p.filename().string() + ":" + std::to_string(size) + ":" + std::to_string(mtime.time_since_epoch().count());
}

// Versions the policy selects among those on disk, ascending.
std::vector<int64_t> SelectVersions(const VersionPolicy& policy, const std::vector<int64_t>& on_disk) {
  std::vector<int64_t> out;
  switch (policy.kind) {
    case VersionPolicy::Kind::kAll:
      out = on_disk;
      break;
    case VersionPolicy::Kind::kLatest: {
      const size_t n = std::min(on_disk.size(), static_cast<size_t>(policy.latest));
      out.assign(on_disk.end() - static_cast<std::ptrdiff_t>(n), on_disk.end());
      break;
    }
    case VersionPolicy::Kind::kSpecific:
      for (int64_t v : policy.specific) {
        if (std::binary_search(on_disk.begin(), on_disk.end(), v)) out.push_back(v);
      }
      break;
  }
  return out;
}

// A batch of zeros shaped by the config's inputs.
std::vector<Tensor> ZeroInputs(const ModelConfig& c, int64_t rows) {
  std::vector<Tensor> inputs;
  for (const auto& spec : c.inputs) {
    Tensor t;
    t.name = spec.name;
    t.datatype = spec.datatype;
    if (c.max_batch_size > 0) t.shape.push_back(rows);
    t.shape.insert(t.shape.end(), spec.dims.begin(), spec.dims.end());
    t.data.assign(t.expected_byte_size(), 0);
    inputs.push_back(std::move(t));
  }
  return inputs;
}

// How reference loading sees a model version.
MonitoredModel MonitoredModelOf(const ModelConfig& c, int64_t version) {
  return {c.name, version, c.monitoring, c.inputs, c.outputs, c.max_batch_size};
}

// The model's first output on rows of its only (FP32) input.
ReferenceScorer ScorerOf(const ModelConfig& c, Scheduler& scheduler) {
  return [&c, &scheduler](std::vector<float> rows, int64_t n) -> StatusOr<std::vector<double>> {
    std::vector<Tensor> in = ZeroInputs(c, n);
    std::copy(rows.begin(), rows.end(), in[0].mutable_as<float>());
    VIGIL_ASSIGN_OR_RETURN(std::vector<Tensor> out, scheduler.RunDirect(std::move(in), n));
    std::vector<double> values;
    if (out.empty()) return values;
    const Tensor& o = out[0];
    for (int64_t i = 0; i < o.element_count(); ++i) {
      values.push_back(o.datatype == DataType::kFp32 ? o.as<float>()[i] : std::nan(""));
    }
    return values;
  };
}

bool HasFixedInputs(const ModelConfig& c) {
  for (const auto& spec : c.inputs) {
    for (int64_t d : spec.dims) {
      if (d < 0) return false;
    }
  }
  return true;
}

}  // namespace

std::string_view VersionStateName(VersionState state) {
  switch (state) {
    case VersionState::kLoading:
      return "LOADING";
    case VersionState::kReady:
      return "READY";
    case VersionState::kUnloading:
      return "UNLOADING";
    case VersionState::kUnavailable:
      return "UNAVAILABLE";
  }
  return "UNKNOWN";
}

StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Create(Options options) {
  std::error_code ec;
  if (!fs::is_directory(options.root, ec)) {
    return NotFound("--model-repository: '" + options.root.string() + "' is not a directory");
  }
  return std::unique_ptr<ModelRepository>(new ModelRepository(std::move(options)));
}

ModelRepository::ModelRepository(Options options) : options_(std::move(options)) {
  table_.store(std::make_shared<const ServingTable>());
  reaper_ = std::thread([this] {
    SetThreadName("vigil-reaper");
    ReaperLoop();
  });
}

ModelRepository::~ModelRepository() {
  StopAll();
  {
    MutexLock lock(retire_mu_);
    stop_reaper_ = true;
  }
  retire_cv_.NotifyAll();
  if (reaper_.joinable()) reaper_.join();
}

void ModelRepository::Poll() {
  MutexLock control(control_mu_);
  std::set<std::string> on_disk;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(options_.root, ec)) {
    if (IsModelFolder(e)) on_disk.insert(e.path().filename().string());
  }
  if (ec) {
    spdlog::error("event=repository_scan_failed root={} error={}", LogValue(options_.root.string()),
                  LogValue(ec.message()));
    return;
  }
  // Ensembles after the models they combine, so their members are checked
  // when they load.
  // Each config is read once per poll.
  std::vector<std::pair<std::string, StatusOr<std::string>>> ensembles;
  for (const auto& name : on_disk) {
    if (unloaded_by_request_.count(name)) continue;
    StatusOr<std::string> text = ConfigText(name);
    const auto parsed = text.ok() ? ParseModelConfig(name, *text) : StatusOr<ModelConfig>(text.status());
    if (parsed.ok() && parsed->backend == BackendKind::kEnsemble) {
      ensembles.emplace_back(name, std::move(text));
    } else {
      SyncModel(name, false, std::move(text));
    }
  }
  for (auto& [name, text] : ensembles) SyncModel(name, false, std::move(text));
  // Models whose folder disappeared.
  std::vector<std::string> gone;
  {
    MutexLock lock(records_mu_);
    for (const auto& [name, rec] : records_) {
      if (!on_disk.count(name)) gone.push_back(name);
    }
  }
  for (const auto& name : gone) {
    RemoveModel(name, "");
    MutexLock lock(records_mu_);
    records_.erase(name);
    unloaded_by_request_.erase(name);
    failed_fingerprints_.erase(name);
    config_overrides_.erase(name);
  }
}

Status ModelRepository::LoadModel(const std::string& name, std::optional<std::string> config_text) {
  MutexLock control(control_mu_);
  std::error_code ec;
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.' ||
      !fs::is_directory(options_.root / name, ec)) {
    return NotFound("model '" + name + "' is not in the repository " + options_.root.string());
  }
  if (config_text) {
    auto parsed = LoadModelConfig(name, *config_text);
    if (!parsed.ok()) return parsed.status().WithContext("config override");
    config_overrides_[name] = std::move(*config_text);
  } else {
    config_overrides_.erase(name);
  }
  unloaded_by_request_.erase(name);
  SyncModel(name, true);
  MutexLock lock(records_mu_);
  const ModelRecord& rec = records_[name];
  if (!rec.model_error.empty()) return InvalidArgument(rec.model_error);
  for (const auto& [v, st] : rec.versions) {
    if (st.state != VersionState::kReady) return InvalidArgument(st.reason);
  }
  return Status::Ok();
}

Status ModelRepository::UnloadModel(const std::string& name) {
  MutexLock control(control_mu_);
  {
    auto t = table();
    MutexLock lock(records_mu_);
    if (!t->models.count(name) && !records_.count(name)) return NotFound("model '" + name + "' is not loaded");
  }
  unloaded_by_request_.insert(name);
  RemoveModel(name, "unloaded by request");
  MutexLock lock(records_mu_);
  ModelRecord& rec = records_[name];
  rec.model_error =
      "model '" + name + "' was unloaded by request; POST /v2/repository/models/" + name + "/load to load it";
  return Status::Ok();
}

void ModelRepository::KeepLoaded(const std::string& model, int64_t version) {
  MutexLock control(control_mu_);
  auto [it, added] = kept_[model].try_emplace(version, "");
  if (!added) return;
  std::error_code ec;
  if (!unloaded_by_request_.count(model) && fs::is_directory(options_.root / model, ec)) SyncModel(model, false);
}

void ModelRepository::KeepOnly(const NamedVersions& named) {
  MutexLock control(control_mu_);
  std::map<std::string, std::map<int64_t, std::string>> next;
  for (const auto& [ref, endpoints] : named) next[ref.first][ref.second] = endpoints;
  std::set<std::string> changed;
  for (const auto& [model, versions] : kept_) {
    auto it = next.find(model);
    if (it == next.end() || it->second != versions) changed.insert(model);
  }
  for (const auto& [model, versions] : next) {
    if (!kept_.count(model)) changed.insert(model);
  }
  kept_ = std::move(next);
  std::error_code ec;
  for (const auto& model : changed) {
    if (!unloaded_by_request_.count(model) && fs::is_directory(options_.root / model, ec)) SyncModel(model, false);
  }
}

void ModelRepository::RemoveModel(const std::string& name, const std::string& reason) {
  auto current = table();
  auto it = current->models.find(name);
  if (it == current->models.end()) return;
  auto versions = it->second.versions;
  auto next = std::make_shared<ServingTable>(*current);
  next->models.erase(name);
  table_.store(std::move(next));
  for (auto& [v, mv] : versions) Retire(mv);
  spdlog::info("event=model_unloading model={} reason={}", LogValue(name),
               LogValue(reason.empty() ? "removed from disk" : reason));
}

StatusOr<std::string> ModelRepository::ConfigText(const std::string& name) const {
  auto override_it = config_overrides_.find(name);
  if (override_it != config_overrides_.end()) return override_it->second;
  return ReadFile(options_.root / name / "config.yaml");
}

void ModelRepository::SyncModel(const std::string& name, bool force, std::optional<StatusOr<std::string>> read) {
  const fs::path dir = options_.root / name;
  auto set_model_error = [&](const std::string& error) {
    MutexLock lock(records_mu_);
    std::string& current = records_[name].model_error;
    // Polling finds the same fault again and again; log it once.
    if (current != error) spdlog::error("event=model_unavailable model={} reason={}", LogValue(name), LogValue(error));
    current = error;
  };

  auto text = read ? std::move(*read) : ConfigText(name);
  if (!text.ok()) {
    set_model_error("model '" + name + "': missing config.yaml in " + dir.string());
    return;
  }
  auto parsed = LoadModelConfig(name, *text);
  if (!parsed.ok()) {
    set_model_error(parsed.status().message());
    return;
  }
  auto config = std::make_shared<const ModelConfig>(std::move(parsed).value());

  std::vector<int64_t> on_disk;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    int64_t v;
    if (e.is_directory() && ParseVersion(e.path().filename().string(), &v)) on_disk.push_back(v);
  }
  std::sort(on_disk.begin(), on_disk.end());
  const std::vector<int64_t> selected = SelectVersions(config->version_policy, on_disk);
  // Versions deployments name are loaded whatever the policy selects.
  std::map<int64_t, std::string> kept_only;
  if (auto k = kept_.find(name); k != kept_.end()) {
    for (const auto& [v, endpoints] : k->second) {
      if (std::binary_search(on_disk.begin(), on_disk.end(), v) &&
          !std::binary_search(selected.begin(), selected.end(), v)) {
        kept_only[v] = endpoints;
      }
    }
  }
  std::vector<int64_t> wanted = selected;
  for (const auto& [v, endpoints] : kept_only) wanted.push_back(v);
  std::sort(wanted.begin(), wanted.end());
  if (wanted.empty()) {
    set_model_error("model '" + name + "': no version folder matches version_policy (folders found: " +
                    std::to_string(on_disk.size()) + ")");
    return;
  }
  {
    MutexLock lock(records_mu_);
    records_[name].model_error.clear();
  }

  auto current = table();
  std::map<int64_t, std::shared_ptr<ModelVersion>> existing;
  if (auto it = current->models.find(name); it != current->models.end()) existing = it->second.versions;

  std::map<int64_t, std::shared_ptr<ModelVersion>> next;
  bool changed = false;
  for (int64_t v : wanted) {
    const fs::path vdir = dir / std::to_string(v);
    fs::path model_file;
    for (const auto& candidate : BackendModelFileNames(config->backend)) {
      if (fs::exists(vdir / candidate, ec)) {
        model_file = vdir / candidate;
        break;
      }
    }
    std::string fingerprint = *text + "|";
    if (!model_file.empty()) fingerprint += FileFingerprint(model_file);
    if (fs::exists(vdir / kVersionOptionsFile, ec)) fingerprint += "|" + FileFingerprint(vdir / kVersionOptionsFile);

    auto old = existing.find(v);
    if (!force && old != existing.end() && old->second->fingerprint() == fingerprint) {
      next[v] = old->second;
      continue;
    }
    // A version that failed to load is retried only once its files change
    // (or on an explicit load), not on every poll.
    std::string& failed = failed_fingerprints_[name][v];
    if (!force && failed == fingerprint) {
      if (old != existing.end()) next[v] = old->second;
      continue;
    }
    {
      MutexLock lock(records_mu_);
      auto& rec = records_[name].versions[v];
      if (rec.state != VersionState::kReady || old == existing.end()) SetState(name, v, VersionState::kLoading, "");
    }
    Status status;
    std::shared_ptr<ModelVersion> loaded;
    if (config->backend == BackendKind::kEnsemble) {
      auto result = LoadEnsembleVersion(config, v, vdir, fingerprint);
      if (result.ok()) {
        loaded = std::move(result).value();
      } else {
        status = result.status();
      }
    } else if (model_file.empty()) {
      std::string names;
      for (const auto& n : BackendModelFileNames(config->backend)) names += (names.empty() ? "" : " or ") + n;
      status = NotFound("model '" + name + "' version " + std::to_string(v) + ": missing model file: expected " +
                        names + " in " + vdir.string());
    } else {
      auto result = LoadVersion(config, v, model_file, fingerprint);
      if (result.ok()) {
        loaded = std::move(result).value();
      } else {
        status = result.status();
      }
    }
    if (loaded) {
      failed.clear();
      next[v] = loaded;
      changed = true;
      MutexLock lock(records_mu_);
      SetState(name, v, VersionState::kReady, "");
      spdlog::info("event=model_ready model={} version={} backend={} instances={}", LogValue(name), v,
                   BackendKindName(config->backend), config->instances);
    } else {
      failed = fingerprint;
      spdlog::error("event=model_load_failed model={} version={} reason={}", LogValue(name), v,
                    LogValue(status.message()));
      if (old != existing.end()) {
        // Keep serving the version that was loaded; report why the reload failed.
        next[v] = old->second;
        MutexLock lock(records_mu_);
        SetState(name, v, VersionState::kReady, "reload failed, still serving the previous load: " + status.message());
      } else {
        MutexLock lock(records_mu_);
        SetState(name, v, VersionState::kUnavailable, status.message());
      }
    }
  }
  std::vector<std::shared_ptr<ModelVersion>> retired;
  for (auto& [v, mv] : existing) {
    auto it = next.find(v);
    if (it == next.end() || it->second != mv) {
      retired.push_back(mv);
      changed = true;
    }
  }
  {
    // Versions no longer selected leave the index once retired.
    MutexLock lock(records_mu_);
    auto& versions = records_[name].versions;
    for (auto it = versions.begin(); it != versions.end();) {
      if (std::find(wanted.begin(), wanted.end(), it->first) == wanted.end() && !existing.count(it->first)) {
        it = versions.erase(it);
      } else {
        ++it;
      }
    }
  }
  {
    // The index says why a version the policy does not select is loaded.
    constexpr std::string_view kKept = "kept loaded: ";
    MutexLock lock(records_mu_);
    for (auto& [v, st] : records_[name].versions) {
      if (st.state != VersionState::kReady || !(st.reason.empty() || st.reason.starts_with(kKept))) continue;
      auto k = kept_only.find(v);
      st.reason = k == kept_only.end() ? ""
                                       : std::string(kKept) + "version_policy does not select it; " +
                                             (k->second.empty() ? std::string("a deployment being applied names it")
                                                                : "named by " + k->second);
    }
  }
  if (changed || !current->models.count(name))
    Publish(name, next.empty() ? config : next.begin()->second->shared_config(), next);
  for (auto& mv : retired) Retire(mv);
}

StatusOr<std::shared_ptr<ModelVersion>> ModelRepository::LoadVersion(std::shared_ptr<const ModelConfig> config,
                                                                     int64_t version, const fs::path& model_file,
                                                                     const std::string& fingerprint) {
  const ModelConfig& c = *config;
  BackendSpec spec = BackendSpecOf(c, version, model_file);
  // A version may run with options of its own (vigil optimize writes them).
  if (const fs::path own = model_file.parent_path() / kVersionOptionsFile; fs::exists(own)) {
    VIGIL_ASSIGN_OR_RETURN(const std::string text, ReadFile(own));
    VIGIL_ASSIGN_OR_RETURN(spec.options, LoadVersionBackendOptions(c, text));
  }
  std::vector<std::unique_ptr<Backend>> instances;
  for (int64_t i = 0; i < c.instances; ++i) {
    VIGIL_ASSIGN_OR_RETURN(auto backend, options_.backends ? options_.backends(BackendKindName(c.backend), spec)
                                                           : CreateBackend(BackendKindName(c.backend), spec));
    instances.push_back(std::move(backend));
  }
  Scheduler::Options so;
  so.model_name = c.name;
  so.version = version;
  so.max_batch_size = c.max_batch_size;
  so.queue.max_batch_size = c.max_batch_size;
  so.queue.max_queue_delay = Micros(c.dynamic_batching.max_queue_delay_us);
  so.queue.preferred_batch_sizes = c.dynamic_batching.preferred_batch_sizes;
  so.queue.max_queue_size = static_cast<size_t>(c.dynamic_batching.max_queue_size);
  so.outputs = c.outputs;
  so.clock = options_.clock;
  // Without a batching delay the next batch is ready at once, so a cheap
  // model runs on the receiving thread when an instance is idle.
  so.inline_execution = c.dynamic_batching.max_queue_delay_us == 0;
  if (options_.metrics) so.metrics = options_.metrics->ForVersion(c.name, std::to_string(version));
  std::string reference_csv;
  const MonitoredModel monitored = MonitoredModelOf(c, version);
  std::shared_ptr<DriftMonitor> monitor = MakeDriftMonitor(monitored, model_file.parent_path(), &reference_csv);
  if (monitor) {
    so.observer = [monitor](const Tensor& input, const Tensor& output, int64_t rows) {
      monitor->Observe(input, output, rows);
    };
  }
  VIGIL_ASSIGN_OR_RETURN(auto scheduler, Scheduler::Create(std::move(so), std::move(instances)));

  // A one-row probe checks that the model accepts the declared inputs and
  // produces the declared outputs; warm-up repeats it at the configured size.
  if (HasFixedInputs(c)) {
    auto probe = scheduler->RunDirect(ZeroInputs(c, 1), 1);
    if (!probe.ok()) {
      return probe.status().WithContext("model '" + c.name + "' version " + std::to_string(version) +
                                        " does not match its config (probe with one row of zeros)");
    }
    if (c.warmup.enabled) {
      for (int64_t i = 0; i < c.warmup.iterations; ++i) {
        auto w = scheduler->RunDirect(ZeroInputs(c, c.warmup.batch_size), c.warmup.batch_size);
        if (!w.ok())
          return w.status().WithContext("warm-up of model '" + c.name + "' version " + std::to_string(version));
      }
    }
  }
  if (monitor && !reference_csv.empty()) LoadReference(monitored, reference_csv, ScorerOf(c, *scheduler), *monitor);
  return std::make_shared<ModelVersion>(std::move(config), version, std::move(scheduler), fingerprint,
                                        std::move(monitor));
}

StatusOr<std::shared_ptr<ModelVersion>> ModelRepository::LoadEnsembleVersion(std::shared_ptr<const ModelConfig> config,
                                                                             int64_t version,
                                                                             const fs::path& version_dir,
                                                                             const std::string& fingerprint) {
  const ModelConfig& c = *config;
  // Members loaded now are checked now, so a misfit is named when the
  // ensemble loads; one not loaded yet is checked by each request (and left
  // out while it is missing).
  for (size_t i = 0; i < c.ensemble.members.size(); ++i) {
    const EnsembleMember& m = c.ensemble.members[i];
    auto member = Acquire(m.model, m.version);
    if (!member.ok()) {
      spdlog::warn("event=ensemble_member_not_ready model={} version={} member={} reason={}", LogValue(c.name), version,
                   LogValue(m.model), LogValue(member.status().message()));
      continue;
    }
    VIGIL_RETURN_IF_ERROR(CheckEnsembleMember(c, i, (*member)->config()));
  }
  auto counters = std::make_unique<EnsembleCounters>(options_.metrics, c.name, version, c.ensemble.members.size());
  std::string reference_csv;
  const MonitoredModel monitored = MonitoredModelOf(c, version);
  std::shared_ptr<DriftMonitor> monitor = MakeDriftMonitor(monitored, version_dir, &reference_csv);
  auto mv = std::make_shared<ModelVersion>(std::move(config), version, std::move(counters), fingerprint, monitor);
  if (monitor && !reference_csv.empty()) {
    // The ensemble's outputs on the reference rows, from its members as
    // they serve now (a member not loaded leaves the reference to the first
    // live answers, as any model whose scoring fails).
    auto score = [this, mv](std::vector<float> rows, int64_t n) -> StatusOr<std::vector<double>> {
      auto request = std::make_unique<InferenceRequest>();
      std::vector<Tensor> in = ZeroInputs(mv->config(), n);
      std::copy(rows.begin(), rows.end(), in[0].mutable_as<float>());
      request->inputs = std::move(in);
      request->rows = n;
      request->monitored = false;
      request->deadline = DeadlineAfter(options_.clock->Now(), std::chrono::seconds(10));
      auto answer = std::make_shared<std::promise<EnsembleAnswer>>();
      auto ready = answer->get_future();
      auto acquire = [this](const std::string& model, int64_t version) { return Acquire(model, version); };
      RunEnsemble(acquire, mv, std::move(request),
                  {.mode = Scheduler::EnqueueMode::kRunIfIdle, .queued = nullptr, .clock = options_.clock},
                  [answer](EnsembleAnswer&& a) { answer->set_value(std::move(a)); });
      EnsembleAnswer a = ready.get();
      if (!a.status.ok()) return a.status;
      std::vector<double> values;
      for (int64_t i = 0; i < a.output.element_count(); ++i) values.push_back(a.output.as<float>()[i]);
      return values;
    };
    LoadReference(monitored, reference_csv, score, *monitor);
  }
  return mv;
}

void ModelRepository::Publish(const std::string& name, std::shared_ptr<const ModelConfig> config,
                              std::map<int64_t, std::shared_ptr<ModelVersion>> versions) {
  auto next = std::make_shared<ServingTable>(*table());
  if (versions.empty()) {
    next->models.erase(name);
  } else {
    next->models[name] = ServingTable::Entry{std::move(config), std::move(versions)};
  }
  table_.store(std::move(next));
}

void ModelRepository::Retire(std::shared_ptr<ModelVersion> version) {
  {
    MutexLock lock(records_mu_);
    auto& versions = records_[version->config().name].versions;
    // A replaced version's row now describes its successor; only mark rows of
    // versions that are leaving.
    auto t = table();
    auto it = t->models.find(version->config().name);
    const bool replaced = it != t->models.end() && it->second.versions.count(version->version());
    if (!replaced && versions.count(version->version())) {
      SetState(version->config().name, version->version(), VersionState::kUnloading, "");
    }
  }
  MutexLock lock(retire_mu_);
  retiring_.push_back(std::move(version));
  retire_cv_.NotifyAll();
}

void ModelRepository::SetState(const std::string& model, int64_t version, VersionState state,
                               const std::string& reason) {
  VersionStatus& st = records_[model].versions[version];
  st.model = model;
  st.version = std::to_string(version);
  st.state = state;
  st.reason = reason;
  PublishStateGauge(model, version, state);
}

void ModelRepository::PublishStateGauge(const std::string& model, int64_t version, std::optional<VersionState> state) {
  if (!options_.metrics) return;
  for (auto s : {VersionState::kLoading, VersionState::kReady, VersionState::kUnloading, VersionState::kUnavailable}) {
    options_.metrics->model_state()
        .WithLabels({model, std::to_string(version), std::string(VersionStateName(s))})
        .Set(state == s ? 1.0 : 0.0);
  }
}

void ModelRepository::ReaperLoop() {
  MutexLock lock(retire_mu_);
  while (true) {
    std::vector<std::shared_ptr<ModelVersion>> idle;
    for (auto it = retiring_.begin(); it != retiring_.end();) {
      if (it->use_count() == 1) {
        idle.push_back(std::move(*it));
        it = retiring_.erase(it);
      } else {
        ++it;
      }
    }
    if (!idle.empty()) {
      lock.Unlock();
      for (auto& mv : idle) {
        const std::string model = mv->config().name;
        const int64_t v = mv->version();
        mv->Stop();
        mv.reset();
        MutexLock rl(records_mu_);
        auto t = table();
        auto it = t->models.find(model);
        const bool still_served = it != t->models.end() && it->second.versions.count(v);
        auto rec = records_.find(model);
        if (!still_served && rec != records_.end()) {
          auto vit = rec->second.versions.find(v);
          if (vit != rec->second.versions.end() && vit->second.state == VersionState::kUnloading) {
            rec->second.versions.erase(vit);
            PublishStateGauge(model, v, std::nullopt);
          }
        }
        spdlog::info("event=model_unloaded model={} version={}", LogValue(model), v);
      }
      lock.Lock();
      continue;
    }
    if (stop_reaper_ && retiring_.empty()) return;
    retire_cv_.WaitFor(lock, std::chrono::milliseconds(retiring_.empty() ? 1000 : 10));
  }
}

StatusOr<std::shared_ptr<ModelVersion>> ModelRepository::Acquire(std::string_view model, int64_t version) const {
  auto t = table();
  auto it = t->models.find(model);
  if (it == t->models.end()) {
    MutexLock lock(records_mu_);
    auto rec = records_.find(std::string(model));
    if (rec != records_.end()) {
      std::string why = rec->second.model_error;
      for (const auto& [v, st] : rec->second.versions) {
        if (why.empty() && !st.reason.empty()) why = st.reason;
      }
      return Unavailable("model '" + std::string(model) + "' is not ready" + (why.empty() ? "" : ": " + why));
    }
    return NotFound("unknown model '" + std::string(model) + "'");
  }
  const auto& versions = it->second.versions;
  if (version == 0) return versions.rbegin()->second;
  auto v = versions.find(version);
  if (v == versions.end()) {
    std::string have;
    for (const auto& [n, mv] : versions) have += (have.empty() ? "" : ", ") + std::to_string(n);
    return NotFound("model '" + std::string(model) + "' has no ready version " + std::to_string(version) +
                    " (ready: " + have + ")");
  }
  return v->second;
}

StatusOr<ModelInfo> ModelRepository::Find(std::string_view model, int64_t version) const {
  auto t = table();
  auto it = t->models.find(model);
  if (it == t->models.end() || (version != 0 && !it->second.versions.count(version))) {
    return Acquire(model, version).status();  // the same error message as inference
  }
  ModelInfo info;
  info.config = it->second.config;
  for (const auto& [v, mv] : it->second.versions) {
    if (version == 0 || v == version) info.ready_versions.push_back(v);
  }
  return info;
}

StatusOr<std::vector<std::shared_ptr<ModelVersion>>> ModelRepository::AcquireAll(std::string_view model,
                                                                                 int64_t version) const {
  std::vector<std::shared_ptr<ModelVersion>> out;
  auto t = table();
  if (model.empty()) {
    for (const auto& [name, entry] : t->models) {
      for (const auto& [v, mv] : entry.versions) out.push_back(mv);
    }
    return out;
  }
  if (version != 0) {
    VIGIL_ASSIGN_OR_RETURN(auto mv, Acquire(model, version));
    out.push_back(std::move(mv));
    return out;
  }
  auto it = t->models.find(model);
  if (it == t->models.end()) return Acquire(model, 0).status();
  for (const auto& [v, mv] : it->second.versions) out.push_back(mv);
  return out;
}

std::vector<VersionStatus> ModelRepository::Index() const {
  std::vector<VersionStatus> out;
  MutexLock lock(records_mu_);
  for (const auto& [name, rec] : records_) {
    if (!rec.model_error.empty()) {
      bool any_ready = false;
      for (const auto& [v, st] : rec.versions) any_ready |= st.state == VersionState::kReady;
      if (!any_ready) {
        out.push_back({name, "", VersionState::kUnavailable, rec.model_error});
        continue;
      }
    }
    for (const auto& [v, st] : rec.versions) {
      out.push_back(st);
      // A model whose folder broke after it loaded keeps serving; say why
      // the change on disk was not applied.
      if (!rec.model_error.empty() && st.state == VersionState::kReady && st.reason.empty()) {
        out.back().reason = "still serving the last good load; the change on disk failed: " + rec.model_error;
      }
    }
  }
  return out;
}

void ModelRepository::StopAll(Scheduler::StopMode mode) {
  MutexLock control(control_mu_);
  auto current = table();
  table_.store(std::make_shared<const ServingTable>());
  for (const auto& [name, entry] : current->models) {
    for (const auto& [v, mv] : entry.versions) mv->Stop(mode);
  }
  std::vector<std::shared_ptr<ModelVersion>> retiring;
  {
    MutexLock lock(retire_mu_);
    retiring = retiring_;
  }
  for (auto& mv : retiring) mv->Stop(mode);
}

}  // namespace vigil
