#include "server/deployments.h"

#include <fstream>
#include <set>
#include <sstream>

#include "core/logging.h"

namespace vigil {

namespace fs = std::filesystem;

Deployments::Deployments(ModelRepository& repository, fs::path directory)
    : repository_(repository), directory_(std::move(directory)), table_(std::make_shared<const Table>()) {}

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

ModelCatalog Deployments::Catalog() const {
  ModelCatalog c;
  c.check = [this](const std::string& model, int64_t version) -> Status {
    auto info = repository_.Find(model, version);
    return info.ok() ? Status::Ok() : info.status();
  };
  c.is_model = [this](const std::string& name) {
    for (const auto& row : repository_.Index()) {
      if (row.model == name) return true;
    }
    return false;
  };
  return c;
}

void Deployments::Publish(Table next) { table_.store(std::make_shared<const Table>(std::move(next))); }

Status Deployments::Apply(DeploymentSpec spec) {
  VIGIL_RETURN_IF_ERROR(ValidateDeploymentSpec(spec, Catalog()));
  std::lock_guard lock(control_mu_);
  Table next = *table_.load();
  const std::string name = spec.endpoint;
  next[name] = std::make_shared<const Router>(std::make_shared<const DeploymentSpec>(std::move(spec)));
  Publish(std::move(next));
  return Status::Ok();
}

Status Deployments::Apply(const std::string& endpoint, std::string_view text) {
  VIGIL_ASSIGN_OR_RETURN(DeploymentSpec spec, ParseDeploymentSpec(endpoint, text));
  VIGIL_RETURN_IF_ERROR(Apply(std::move(spec)));
  spdlog::info("event=deployment_applied endpoint={}", LogValue(endpoint));
  return Status::Ok();
}

Status Deployments::Remove(const std::string& endpoint) {
  std::lock_guard lock(control_mu_);
  Table next = *table_.load();
  if (!next.erase(endpoint)) return NotFound("no endpoint '" + endpoint + "'");
  Publish(std::move(next));
  spdlog::info("event=deployment_removed endpoint={}", LogValue(endpoint));
  return Status::Ok();
}

Status Deployments::Mutate(const std::string& endpoint, const std::function<Status(DeploymentSpec&)>& change) {
  std::lock_guard lock(control_mu_);
  auto current = table_.load();
  auto it = current->find(endpoint);
  if (it == current->end()) return NotFound("no endpoint '" + endpoint + "'");
  DeploymentSpec spec = it->second->spec();
  VIGIL_RETURN_IF_ERROR(change(spec));
  VIGIL_RETURN_IF_ERROR(ValidateDeploymentSpec(spec, Catalog()));
  Table next = *current;
  next[endpoint] = std::make_shared<const Router>(std::make_shared<const DeploymentSpec>(std::move(spec)));
  Publish(std::move(next));
  return Status::Ok();
}

void Deployments::LoadDirectory() {
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
  std::map<std::string, std::string> previous;
  {
    std::lock_guard lock(control_mu_);
    previous = file_texts_;
  }
  for (const auto& [endpoint, text] : texts) {
    auto it = previous.find(endpoint);
    if (it != previous.end() && it->second == text) continue;
    const Status s = Apply(endpoint, text);
    std::lock_guard lock(control_mu_);
    if (s.ok()) {
      file_texts_[endpoint] = text;
      file_errors_.erase(endpoint);
    } else if (file_errors_[endpoint] != s.message()) {
      // Polling finds the same fault again and again; log it once.
      file_errors_[endpoint] = s.message();
      spdlog::error("event=deployment_invalid endpoint={} file={} error={}", LogValue(endpoint),
                    LogValue((directory_ / (endpoint + ".yaml")).string()), LogValue(s.message()));
    }
  }
  for (const auto& [endpoint, text] : previous) {
    if (texts.count(endpoint)) continue;
    (void)Remove(endpoint);
    std::lock_guard lock(control_mu_);
    file_texts_.erase(endpoint);
  }
}

}  // namespace vigil
