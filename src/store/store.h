// Store: what Vigil keeps across restarts. An interface free of any
// database's types; SqliteStore is the embedded default, a PostgreSQL one
// (for replicas) comes later, so the SQL behind it stays portable.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace vigil {

// One deployment as it was last put in force.
struct StoredDeployment {
  std::string endpoint;
  std::string spec_yaml;    // the spec in force, with every API change applied
  std::string source_text;  // the deployments/ file text it last came from; empty when from the API
  int64_t updated_ms = 0;   // unix milliseconds
};

// One change to a deployment: who, what, when, before and after.
struct AuditEvent {
  int64_t id = 0;  // assigned by the store, increasing
  int64_t time_ms = 0;
  std::string endpoint;
  std::string actor;   // peer address, "file", ...
  std::string action;  // apply, delete, weight, promote, rollback, pause, resume
  std::string detail;  // e.g. the candidate and share
  std::string before;  // spec YAML, empty when created
  std::string after;   // spec YAML, empty when deleted
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Status SaveDeployment(const StoredDeployment& deployment) = 0;
  virtual Status DeleteDeployment(const std::string& endpoint) = 0;
  virtual StatusOr<std::vector<StoredDeployment>> LoadDeployments() = 0;

  virtual Status AppendAudit(const AuditEvent& event) = 0;
  // Newest first, at most `limit`.
  virtual StatusOr<std::vector<AuditEvent>> History(const std::string& endpoint, int limit) = 0;
};

// Opens (creating when needed) DIR/vigil.db: WAL mode, schema migrated to
// the current version. Fails with the path and SQLite's message.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& data_dir);

// The schema version this build writes (migrations up to it are applied at open).
int CurrentSchemaVersion();

}  // namespace vigil
