#include "routing/deployments.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>

#include "core/clock.h"
#include "core/logging.h"

namespace vigil {

namespace fs = std::filesystem;

Deployments::Deployments(Options options)
    : catalog_(std::move(options.catalog)),
      directory_(std::move(options.directory)),
      store_(options.store),
      clock_(options.clock ? *options.clock : *WallClock::System()),
      table_(std::make_shared<const Table>()) {}

std::shared_ptr<const Router> Deployments::Find(std::string_view endpoint) const {
  auto t = table_.load();
  auto it = t->find(endpoint);
  return it == t->end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const Router>> Deployments::All() const {
  std::vector<std::shared_ptr<const Router>> out;
  for (const auto& [name, router] : *table_.load()) out.push_back(router);
  return out;
}

namespace {

// When the router's spec took effect, in Unix ms.
int64_t SinceMs(const Router& router) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(router.since().time_since_epoch()).count();
}

}  // namespace

Status Deployments::Commit(const std::string& endpoint, std::optional<DeploymentSpec> next, const ChangeNote& note,
                           bool if_unchanged) {
  auto current = table_.load();
  auto it = current->find(endpoint);
  const std::string before = it == current->end() ? "" : DeploymentSpecToYaml(it->second->spec());
  const std::string after = next ? DeploymentSpecToYaml(*next) : "";
  // A spec's time names its generation (its counts, among replicas): a new
  // spec of the endpoint never shares the previous one's millisecond.
  int64_t now = clock_.NowMillis();
  if (it != current->end()) now = std::max(now, SinceMs(*it->second) + 1);
  if (store_) {
    // Stored first: a change the caller hears about survives a crash.
    Status s = Status::Ok();
    const StoredDeployment stored{endpoint, after, file_texts_[endpoint], now};
    if (auto seen = in_store_.find(endpoint); next && if_unchanged && seen != in_store_.end()) {
      auto written = store_->SaveDeploymentIf(stored, seen->second);
      s = written.status();
      if (s.ok() && !*written) return Aborted("the spec of '" + endpoint + "' was changed through another replica");
    } else {
      s = next ? store_->SaveDeployment(stored) : store_->DeleteDeployment(endpoint);
    }
    if (s.ok()) s = store_->AppendAudit({0, now, endpoint, note.actor, note.action, note.detail, before, after});
    if (!s.ok()) return s.WithContext("deployment '" + endpoint + "' not changed: the store failed");
    if (next) {
      in_store_[endpoint] = after;
    } else {
      in_store_.erase(endpoint);
    }
  }
  {
    MutexLock refused(refused_mu_);
    refused_.erase(endpoint);  // a spec in force, or none: either way no longer refused
  }
  Table table = *current;
  if (next) {
    auto before = current->find(endpoint);
    table[endpoint] = std::make_shared<const Router>(std::make_shared<const DeploymentSpec>(std::move(*next)),
                                                     before == current->end() ? nullptr : before->second.get(), now);
  } else {
    table.erase(endpoint);
  }
  table_.store(std::make_shared<const Table>(std::move(table)));
  spdlog::info("event=deployment_{} endpoint={} actor={} detail={}", note.action, LogValue(endpoint),
               LogValue(note.actor), LogValue(note.detail));
  return Status::Ok();
}

Status Deployments::Apply(const std::string& endpoint, std::string_view text, const ChangeNote& note) {
  VIGIL_ASSIGN_OR_RETURN(DeploymentSpec spec, ParseDeploymentSpec(endpoint, text));
  Status s = ValidateDeploymentSpec(spec, Catalog());  // loads the versions it names
  MutexLock lock(control_mu_);
  if (s.ok()) s = Commit(endpoint, std::move(spec), note);
  ReportInUse(!s.ok());  // a refused spec keeps nothing loaded
  return s;
}

void Deployments::ReportInUse(bool force) {
  if (!catalog_.in_use) return;
  std::map<std::pair<std::string, int64_t>, std::string> named;
  for (const auto& entry : *table_.load()) {
    const std::string& endpoint = entry.first;
    const DeploymentSpec& spec = entry.second->spec();
    auto name = [&](const Variant& v) {
      if (v.version == 0) return;  // the latest: whatever the policy keeps
      std::string& who = named[{v.model, v.version}];
      if (who.find("endpoint " + endpoint) != std::string::npos) return;
      who += (who.empty() ? "endpoint " : ", endpoint ") + endpoint;
    };
    name(spec.production);
    for (const auto& c : spec.candidates) name(c);
    if (spec.overload && spec.overload->fallback) name(*spec.overload->fallback);
  }
  if (!force && named == reported_) return;
  catalog_.in_use(named);
  reported_ = std::move(named);
}

Status Deployments::Remove(const std::string& endpoint, const ChangeNote& note) {
  MutexLock lock(control_mu_);
  bool refused;
  {
    MutexLock guard(refused_mu_);
    refused = refused_.count(endpoint) > 0;
  }
  if (!Find(endpoint) && !refused) return NotFound("no endpoint '" + endpoint + "'");
  VIGIL_RETURN_IF_ERROR(Commit(endpoint, std::nullopt, note));
  file_texts_.erase(endpoint);
  ReportInUse();
  return Status::Ok();
}

Status Deployments::Mutate(const std::string& endpoint, const std::function<Status(DeploymentSpec&)>& change,
                           const ChangeNote& note) {
  MutexLock lock(control_mu_);
  constexpr int kAttempts = 3;
  Status s = Status::Ok();
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    auto router = Find(endpoint);
    if (!router) return NotFound("no endpoint '" + endpoint + "'");
    DeploymentSpec spec = router->spec();
    VIGIL_RETURN_IF_ERROR(change(spec));
    s = ValidateDeploymentSpec(spec, Catalog());
    if (s.ok()) s = Commit(endpoint, std::move(spec), note, /*if_unchanged=*/true);
    if (s.code() != StatusCode::kAborted || attempt == kAttempts) break;
    // Another replica changed it first: put its spec in force, then change that.
    spdlog::info("event=deployment_changed_meanwhile endpoint={} attempt={}", LogValue(endpoint), attempt);
    auto stored = store_->LoadDeployments();
    if (!stored.ok()) return stored.status();
    Sync(*stored);
  }
  ReportInUse(!s.ok());
  return s;
}

Status Deployments::Note(const std::string& endpoint, const ChangeNote& note) {
  if (!store_) return Status::Ok();
  auto router = Find(endpoint);
  if (!router) return NotFound("no endpoint '" + endpoint + "'");
  const std::string spec = DeploymentSpecToYaml(router->spec());
  return store_->AppendAudit({0, clock_.NowMillis(), endpoint, note.actor, note.action, note.detail, spec, spec});
}

StatusOr<std::vector<AuditEvent>> Deployments::History(const std::string& endpoint, int limit) const {
  if (!store_) return FailedPrecondition("the server runs without a store, so it keeps no history");
  return store_->History(endpoint, limit);
}

void Deployments::Restore() {
  if (!store_) return;
  auto stored = store_->LoadDeployments();
  if (!stored.ok()) {
    spdlog::error("event=deployments_restore_failed error={}", LogValue(stored.status().message()));
    return;
  }
  MutexLock lock(control_mu_);
  Table table = *table_.load();
  for (auto& d : *stored) {
    if (!d.source_text.empty()) file_texts_[d.endpoint] = d.source_text;
    in_store_[d.endpoint] = d.spec_yaml;
    // A stored spec is checked like a new one: the store may hold what an
    // older build accepted, and it must never be executed unchecked.
    auto spec = LoadDeploymentSpec(d.endpoint, d.spec_yaml, Catalog());
    if (!spec.ok()) {
      spdlog::error("event=deployment_refused endpoint={} error={}", LogValue(d.endpoint),
                    LogValue(spec.status().message()));
      MutexLock refused(refused_mu_);
      refused_[d.endpoint] = {d.spec_yaml, spec.status().message()};
      continue;
    }
    table[d.endpoint] =
        std::make_shared<const Router>(std::make_shared<const DeploymentSpec>(std::move(*spec)), nullptr, d.updated_ms);
    spdlog::info("event=deployment_restored endpoint={}", LogValue(d.endpoint));
  }
  table_.store(std::make_shared<const Table>(std::move(table)));
  ReportInUse();
}

void Deployments::SyncFromStore() {
  if (!store_) return;
  auto stored = store_->LoadDeployments();
  if (!stored.ok()) {
    spdlog::warn("event=deployments_sync_failed error={}", LogValue(stored.status().message()));
    return;
  }
  MutexLock lock(control_mu_);
  Sync(*stored);
}

void Deployments::Sync(const std::vector<StoredDeployment>& stored) {
  const auto current = table_.load();
  Table table = *current;
  bool changed = false;
  std::set<std::string> present;
  for (const auto& d : stored) {
    present.insert(d.endpoint);
    auto known = in_store_.find(d.endpoint);
    if (known != in_store_.end() && known->second == d.spec_yaml) continue;
    in_store_[d.endpoint] = d.spec_yaml;  // a spec that does not validate here is not retried every poll
    file_texts_[d.endpoint] = d.source_text;
    auto spec = LoadDeploymentSpec(d.endpoint, d.spec_yaml, Catalog());
    if (!spec.ok()) {
      spdlog::error("event=deployment_refused endpoint={} from=store error={}", LogValue(d.endpoint),
                    LogValue(spec.status().message()));
      continue;
    }
    auto before = current->find(d.endpoint);
    table[d.endpoint] =
        std::make_shared<const Router>(std::make_shared<const DeploymentSpec>(std::move(*spec)),
                                       before == current->end() ? nullptr : before->second.get(), d.updated_ms);
    changed = true;
    spdlog::info("event=deployment_synced endpoint={}", LogValue(d.endpoint));
  }
  for (auto it = in_store_.begin(); it != in_store_.end();) {
    if (present.count(it->first)) {
      ++it;
      continue;
    }
    changed |= table.erase(it->first) > 0;
    file_texts_.erase(it->first);
    spdlog::info("event=deployment_synced endpoint={} removed=true", LogValue(it->first));
    it = in_store_.erase(it);
  }
  if (!changed) return;
  table_.store(std::make_shared<const Table>(std::move(table)));
  ReportInUse();
}

StatusOr<std::vector<FrontendCount>> Deployments::OwnCounts(const std::string& replica) {
  if (!shared_base_) {
    VIGIL_ASSIGN_OR_RETURN(std::vector<FrontendCount> stored, store_->LoadFrontendCounts());
    shared_base_.emplace();
    for (const FrontendCount& c : stored) {
      if (c.replica != replica) continue;
      (*shared_base_)[{c.endpoint, c.variant, c.since_ms}] = {static_cast<uint64_t>(std::max<int64_t>(c.requests, 0)),
                                                              static_cast<uint64_t>(std::max<int64_t>(c.errors, 0))};
    }
  }
  std::vector<FrontendCount> rows;
  for (const auto& router : All()) {
    const DeploymentSpec& spec = router->spec();
    const int64_t since = SinceMs(*router);
    for (int i = -1; i < static_cast<int>(spec.candidates.size()); ++i) {
      const Variant& v = i < 0 ? spec.production : spec.candidates[static_cast<size_t>(i)];
      const VariantStats& stats = router->Stats(i);
      Counts base;
      if (auto it = shared_base_->find({spec.endpoint, v.name, since}); it != shared_base_->end()) base = it->second;
      rows.push_back({replica, spec.endpoint, v.name, since, static_cast<int64_t>(base.requests + stats.Served()),
                      static_cast<int64_t>(base.errors + stats.errors.load(std::memory_order_relaxed))});
    }
  }
  return rows;
}

Status Deployments::ShareCounts(const std::string& replica) {
  if (!store_) return Status::Ok();
  MutexLock lock(share_mu_);
  VIGIL_ASSIGN_OR_RETURN(std::vector<FrontendCount> rows, OwnCounts(replica));
  return store_->SaveFrontendCounts(rows);
}

StatusOr<std::map<std::string, std::map<std::string, Deployments::Counts>>> Deployments::SharedCounts(
    const std::string& replica) {
  if (!store_) return FailedPrecondition("no store: the frontend counts are not shared");
  VIGIL_ASSIGN_OR_RETURN(std::vector<FrontendCount> rows, store_->LoadFrontendCounts());
  if (!replica.empty()) {
    std::erase_if(rows, [&](const FrontendCount& c) { return c.replica == replica; });  // stored: up to a poll old
    MutexLock lock(share_mu_);
    VIGIL_ASSIGN_OR_RETURN(std::vector<FrontendCount> own, OwnCounts(replica));  // live
    rows.insert(rows.end(), own.begin(), own.end());
  }
  std::map<std::string, int64_t> since;
  for (const auto& router : All()) since[router->spec().endpoint] = SinceMs(*router);
  std::map<std::string, std::map<std::string, Counts>> out;
  for (const FrontendCount& c : rows) {
    auto it = since.find(c.endpoint);
    if (it == since.end() || it->second != c.since_ms) continue;  // another spec's counts
    Counts& sum = out[c.endpoint][c.variant];
    sum.requests += static_cast<uint64_t>(std::max<int64_t>(c.requests, 0));
    sum.errors += static_cast<uint64_t>(std::max<int64_t>(c.errors, 0));
  }
  return out;
}

void Deployments::RetryRefused() {
  std::map<std::string, Refused> refused;
  {
    MutexLock guard(refused_mu_);
    refused = refused_;
  }
  for (auto& [endpoint, r] : refused) {
    if (Find(endpoint)) continue;
    auto spec = LoadDeploymentSpec(endpoint, r.spec_yaml, Catalog());
    if (!spec.ok()) {
      if (spec.status().message() != r.reason) {
        MutexLock guard(refused_mu_);
        if (auto it = refused_.find(endpoint); it != refused_.end()) it->second.reason = spec.status().message();
      }
      continue;
    }
    Table table = *table_.load();
    table[endpoint] = std::make_shared<const Router>(std::make_shared<const DeploymentSpec>(std::move(*spec)));
    table_.store(std::make_shared<const Table>(std::move(table)));
    {
      MutexLock guard(refused_mu_);
      refused_.erase(endpoint);
    }
    spdlog::info("event=deployment_restored endpoint={} after=refused", LogValue(endpoint));
  }
}

std::map<std::string, Deployments::Refused> Deployments::RefusedDeployments() const {
  MutexLock guard(refused_mu_);
  return refused_;
}

void Deployments::LoadDirectory() {
  {
    MutexLock lock(control_mu_);
    RetryRefused();
    ReportInUse();
  }
  if (directory_.empty()) return;
  std::error_code ec;
  if (!fs::is_directory(directory_, ec)) return;
  std::map<std::string, std::string> texts;
  for (const auto& e : fs::directory_iterator(directory_, ec)) {
    const fs::path& p = e.path();
    if (!e.is_regular_file() || (p.extension() != ".yaml" && p.extension() != ".yml")) continue;
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    texts[p.stem().string()] = ss.str();
  }
  MutexLock lock(control_mu_);
  for (const auto& [endpoint, text] : texts) {
    auto it = file_texts_.find(endpoint);
    if (it != file_texts_.end() && it->second == text) continue;
    const std::string path = (directory_ / (endpoint + ".yaml")).string();
    auto spec = LoadDeploymentSpec(endpoint, text, Catalog());
    Status s = spec.status();
    if (s.ok()) {
      const std::string previous = file_texts_[endpoint];
      file_texts_[endpoint] = text;  // stored with the spec
      s = Commit(endpoint, std::move(*spec), {"file:" + path, "apply", ""});
      if (!s.ok()) file_texts_[endpoint] = previous;
    }
    if (s.ok()) {
      file_errors_.erase(endpoint);
    } else if (file_errors_[endpoint] != s.message()) {
      // Polling finds the same fault again and again; log it once.
      file_errors_[endpoint] = s.message();
      spdlog::error("event=deployment_invalid endpoint={} file={} error={}", LogValue(endpoint), LogValue(path),
                    LogValue(s.message()));
    }
  }
  // Endpoints whose file disappeared (not those that only ever came from the API).
  std::vector<std::string> gone;
  for (const auto& [endpoint, text] : file_texts_) {
    if (!text.empty() && !texts.count(endpoint)) gone.push_back(endpoint);
  }
  for (const auto& endpoint : gone) {
    if (Find(endpoint)) (void)Commit(endpoint, std::nullopt, {"file:" + directory_.string(), "delete", "file removed"});
    file_texts_.erase(endpoint);
  }
  ReportInUse();
}

}  // namespace vigil
