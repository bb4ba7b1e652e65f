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
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "core/thread_annotations.h"
#include "routing/router.h"
#include "store/store.h"

namespace vigil {

// Who made a change and what it was, for the audit history.
struct ChangeNote {
  std::string actor;   // peer address, "file:<path>", "store"
  std::string action;  // apply, delete, weight, promote, rollback, pause, resume
  std::string detail;
};

class Deployments {
 public:
  struct Options {
    ModelCatalog catalog;             // what specs are validated against: the repository's models
    std::filesystem::path directory;  // REPO/deployments; empty = none
    // Keeps every change and its audit event; with one, a change is in force
    // only once it is stored. May be null.
    DeploymentStore* store = nullptr;
    WallClock* clock = nullptr;  // change times; null = the system's
  };
  explicit Deployments(Options options);

  // The endpoint's router, or nullptr when there is no such endpoint.
  std::shared_ptr<const Router> Find(std::string_view endpoint) const;
  std::vector<std::shared_ptr<const Router>> All() const;

  // Validates and puts a spec in force (creates or replaces the endpoint).
  Status Apply(const std::string& endpoint, std::string_view text, const ChangeNote& note);
  Status Remove(const std::string& endpoint, const ChangeNote& note);
  // Changes the endpoint's spec in place (a copy, validated, then swapped):
  // the admin API's weight / promote / rollback / pause / resume. With a
  // shared store this is a read-modify-write: when another replica changed
  // the spec since this one read it, the stored spec is put in force and
  // `change` applied to it again (a few times, then Aborted), so neither
  // change is lost.
  Status Mutate(const std::string& endpoint, const std::function<Status(DeploymentSpec&)>& change,
                const ChangeNote& note);

  // Puts back every deployment the store holds, as it was (at start, before
  // LoadDirectory; an unchanged file then does not override API changes).
  void Restore();
  // Re-reads the directory: new and changed files are applied, endpoints
  // whose file disappeared are removed (those applied through the API stay).
  void LoadDirectory();
  // Puts in force what other replicas changed in the shared store since
  // this one last looked: specs that differ from what it last wrote or read
  // (validated like any spec), endpoints the store no longer has removed.
  // Called every poll; without a store it does nothing.
  void SyncFromStore();

  // Replicas: writes this replica's frontend counts of every endpoint
  // variant to the store (every poll). A replica restarted under the same
  // name goes on from its stored counts for the same spec, so every row
  // only grows while its spec stays.
  Status ShareCounts(const std::string& replica) EXCLUDES(share_mu_);
  // The requests and errors of each endpoint variant for the spec in force
  // here: this replica's (`replica`) live counts plus every other
  // replica's stored ones (at most a poll old; counts of another spec left
  // out): endpoint -> variant -> counts. An empty `replica`: the stored ones.
  struct Counts {
    uint64_t requests = 0, errors = 0;
  };
  StatusOr<std::map<std::string, std::map<std::string, Counts>>> SharedCounts(const std::string& replica)
      EXCLUDES(share_mu_);

  // A stored deployment that did not validate when the server started (a
  // spec written by an older build, or one whose models are gone): it is
  // never routed, is listed with its reason, and stays in the store until a
  // valid spec replaces it or it is deleted. Retried on every poll.
  struct Refused {
    std::string spec_yaml;
    std::string reason;
  };
  std::map<std::string, Refused> RefusedDeployments() const;

  // Records an event of the endpoint that changes nothing in its spec (the
  // overload ladder's rung changes) in its history; OK without a store.
  Status Note(const std::string& endpoint, const ChangeNote& note);

  // The endpoint's changes, newest first (needs a store).
  StatusOr<std::vector<AuditEvent>> History(const std::string& endpoint, int limit) const;

  // What validation checks specs against: the repository's models.
  const ModelCatalog& Catalog() const { return catalog_; }

 private:
  using Table = std::map<std::string, std::shared_ptr<const Router>, std::less<>>;
  // Stores, audits and publishes one change; `next` empty = remove. With
  // `if_unchanged`, the store takes it only while it still holds the spec
  // this replica last saw (else Aborted, nothing changed).
  Status Commit(const std::string& endpoint, std::optional<DeploymentSpec> next, const ChangeNote& note,
                bool if_unchanged = false) REQUIRES(control_mu_);
  // SyncFromStore's work on what the store holds.
  void Sync(const std::vector<StoredDeployment>& stored) REQUIRES(control_mu_);
  // Restores the stored deployments in `refused_` that validate now.
  void RetryRefused() REQUIRES(control_mu_);
  // Tells the catalog which model versions the specs in force name, when
  // that changed (or always with `force`: a refused spec may have loaded one).
  void ReportInUse(bool force = false) REQUIRES(control_mu_);

  const ModelCatalog catalog_;
  const std::filesystem::path directory_;
  DeploymentStore* const store_;
  WallClock& clock_;
  std::atomic<std::shared_ptr<const Table>> table_;
  Mutex control_mu_;
  // endpoint → the deployments/ file text it last came from
  std::map<std::string, std::string> file_texts_ GUARDED_BY(control_mu_);
  // Per endpoint, the spec YAML this replica last wrote to or read from the
  // store: SyncFromStore puts in force what differs (another replica's change).
  std::map<std::string, std::string> in_store_ GUARDED_BY(control_mu_);
  std::map<std::string, std::string> file_errors_ GUARDED_BY(control_mu_);
  std::map<std::pair<std::string, int64_t>, std::string> reported_
      GUARDED_BY(control_mu_);                            // last ReportInUse  // endpoint → last error logged
  mutable Mutex refused_mu_ ACQUIRED_AFTER(control_mu_);  // taken inside control_mu_, never around it
  Mutex share_mu_;
  // ShareCounts: this replica's counts stored before it (re)started, by
  // endpoint, variant and spec time; read once.
  std::optional<std::map<std::tuple<std::string, std::string, int64_t>, Counts>> shared_base_ GUARDED_BY(share_mu_);
  // This replica's counts of every endpoint variant now (stored base + live), as rows.
  StatusOr<std::vector<FrontendCount>> OwnCounts(const std::string& replica) REQUIRES(share_mu_);
  std::map<std::string, Refused> refused_ GUARDED_BY(refused_mu_);
};

}  // namespace vigil
