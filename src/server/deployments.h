// Deployments: the endpoints the server answers, each a Router over a
// validated DeploymentSpec. The table is an immutable snapshot swapped
// whole, so a request routes on one spec from start to end and applying a
// spec never blocks or loses a request.
//
// Specs come from REPO/deployments/<endpoint>.yaml (read at start and on
// every repository poll) and from Apply (the admin API). A spec that fails
// validation is refused with a message naming the field, and the one in
// force stays.
//
// Thread-safety: Find from any thread; Apply/Remove/LoadDirectory are
// serialised internally.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "repository/model_repository.h"
#include "routing/router.h"

namespace vigil {

class Deployments {
 public:
  explicit Deployments(ModelRepository& repository, std::filesystem::path directory = {});

  // The endpoint's router, or nullptr when there is no such endpoint.
  std::shared_ptr<const Router> Find(std::string_view endpoint) const;
  std::vector<std::shared_ptr<const Router>> All() const;

  // Validates and puts a spec in force (creates or replaces the endpoint).
  Status Apply(const std::string& endpoint, std::string_view text);
  Status Apply(DeploymentSpec spec);
  Status Remove(const std::string& endpoint);
  // Changes the endpoint's spec in place (a copy, validated, then swapped):
  // the admin API's weight / promote / rollback / pause / resume.
  Status Mutate(const std::string& endpoint, const std::function<Status(DeploymentSpec&)>& change);

  // Re-reads the directory: new and changed files are applied, endpoints
  // whose file disappeared are removed (those applied through the API stay).
  void LoadDirectory();

  // What validation checks specs against: the repository's models.
  ModelCatalog Catalog() const;

 private:
  using Table = std::map<std::string, std::shared_ptr<const Router>, std::less<>>;
  void Publish(Table next);

  ModelRepository& repository_;
  std::filesystem::path directory_;
  std::atomic<std::shared_ptr<const Table>> table_;
  std::mutex control_mu_;
  std::map<std::string, std::string> file_texts_;  // endpoint → text last read; guarded by control_mu_
  std::map<std::string, std::string> file_errors_;  // endpoint → last error logged; guarded by control_mu_
};

}  // namespace vigil
