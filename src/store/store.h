// Store: what Vigil keeps across restarts. An interface free of any
// database's types; SqliteStore is the embedded default, PostgresStore the
// one replicas share (--store postgres://...).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

// One replica's frontend counts of an endpoint variant since a spec took
// effect (replicas share them, so the leader's guardrails see every
// replica's requests and errors).
struct FrontendCount {
  std::string replica;
  std::string endpoint;
  std::string variant;
  int64_t since_ms = 0;  // the spec's stored time: the counts' generation
  int64_t requests = 0;  // served (malformed requests left out)
  int64_t errors = 0;    // failed on the server's side
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

// One answered request, as the prediction log keeps it.
struct PredictionRecord {
  std::string id;  // the prediction id (the client's request id when it gave one)
  int64_t time_ms = 0;
  std::string endpoint;
  std::string variant;
  std::string model;
  int64_t version = 0;
  int64_t latency_us = 0;
  bool shadow = false;   // a shadow's answer, never returned to the client
  std::string outputs;   // compact JSON: the first output's values
  std::string inputs;    // compact JSON, only for sampled requests; else empty
  std::string key_hash;  // hex hash of the routing key; empty without one
  // The overload rung that answered (routing/overload.h): 0 full; above 0 a
  // degraded answer, left out of quality per variant, rollouts and benchmarks.
  int rung = 0;
};

// Ground truth for a prediction: a label (class index or number) or a reward.
struct FeedbackRecord {
  std::string prediction_id;
  int64_t time_ms = 0;
  std::optional<double> label;
  std::optional<double> reward;
};

// A served (not shadow) prediction joined with its feedback.
struct JoinedPrediction {
  std::string variant;
  std::string outputs;
  std::optional<double> label;
  std::optional<double> reward;
  int64_t time_ms = 0;           // of the prediction
  int64_t feedback_time_ms = 0;  // of its (latest) feedback
  int64_t prediction_row = 0;    // the prediction's place in the log: its identity (ids may repeat)
};

// Where an incremental join stands: the feedback and the predictions it has
// seen (both grow monotonically in the store).
struct JoinCursor {
  int64_t feedback_seq = 0;
  int64_t prediction_row = 0;
};

// A served (not shadow) prediction with its feedback, if any: what a
// rollout analysis reads.
struct ServedPrediction {
  std::string variant;
  int64_t time_ms = 0;
  int64_t latency_us = 0;
  std::string key_hash;  // empty without a routing key
  std::string outputs;
  std::optional<double> label;
  std::optional<double> reward;
  int64_t feedback_time_ms = 0;  // 0 = no feedback
  int64_t row = 0;               // its place in the log
  std::string inputs;            // the sampled inputs (ScanSampledInputs only; empty from ScanServed)
};

// A shadow's answer beside the served answer to the same request (the
// shadow copy carries the prediction id of the request it copies).
struct ShadowPair {
  int64_t time_ms = 0;
  std::string served_variant;
  std::string served_outputs, shadow_outputs;
  int64_t served_latency_us = 0, shadow_latency_us = 0;
  std::optional<double> label;  // the served prediction's feedback, if any
  std::optional<double> reward;
};

// A rollout's state as the controller last persisted it (JSON text,
// written and read by the controller).
struct StoredRollout {
  std::string endpoint;
  std::string state;
  int64_t updated_ms = 0;
  // The leader epoch that decided it (Leadership); 0 = a person's command,
  // unfenced. A shared store refuses a write whose epoch is not the
  // current leader's, so a replica that lost leadership can never decide.
  int64_t epoch = 0;
};

// One analysis of a rollout step with its evidence (JSON text).
struct StoredRolloutAnalysis {
  int64_t id = 0;  // assigned by the store, increasing
  int64_t time_ms = 0;
  std::string endpoint;
  std::string candidate;
  int64_t step = 0;
  std::string verdict;
  std::string evidence;
  int64_t epoch = 0;  // as StoredRollout::epoch
};

// One benchmark of an endpoint's competing models (JSON text).
struct StoredBenchmark {
  int64_t id = 0;  // assigned by the store, increasing
  int64_t time_ms = 0;
  std::string endpoint;
  std::string trigger;  // "manual by PEER", or the alert that started it
  std::string result;
};

// A joined prediction that changed, with its endpoint.
struct JoinedChange {
  std::string endpoint;
  JoinedPrediction joined;
};

// One closed drift window of a model version (monitoring). `columns` is
// the per-column results as JSON text, written and read by the server.
struct StoredDriftWindow {
  std::string model;
  int64_t version = 0;
  int64_t start_ms = 0, end_ms = 0;
  int64_t rows = 0;
  int64_t reference_rows = 0;
  std::string reference_source;
  double drifted_share = 0;
  bool dataset_drift = false;
  std::string columns;
  // Replicas sharing a store each write partial windows of their own
  // traffic (`replica` names the writer, `counts` holds the window's counts
  // as JSON for merging); the leader merges them into windows of all
  // traffic (replica ""), as one machine writes its windows.
  std::string replica{};
  std::string counts{};
  // The leader epoch that merged it (fenced as StoredRollout::epoch); 0 = unfenced.
  int64_t epoch = 0;
};

// A transition of an alert (monitoring): pending, firing, resolved or
// inactive (a pending alert that calmed down before firing), with the
// evidence of the window that caused it. `labels` is JSON text.
struct AlertEvent {
  int64_t id = 0;
  int64_t time_ms = 0;
  std::string alertname;
  std::string fingerprint;
  std::string labels;
  std::string state;
  std::string statistic;
  double value = 0;
  double threshold = 0;
  int64_t window_start_ms = 0, window_end_ms = 0;
  std::string summary;
};

// The store is split by concern, so a component takes (and a test fakes)
// only the part it uses; `Store` is all of them, as one database holds them.

// Deployment specs and their audit history.
class DeploymentStore {
 public:
  virtual ~DeploymentStore() = default;

  virtual Status SaveDeployment(const StoredDeployment& deployment) = 0;
  // Writes `deployment` only while its endpoint's stored spec is still
  // `expected_yaml` (the spec the writer changed): false, and nothing
  // written, when another writer (replica) changed it first.
  virtual StatusOr<bool> SaveDeploymentIf(const StoredDeployment& deployment, const std::string& expected_yaml) = 0;
  virtual Status DeleteDeployment(const std::string& endpoint) = 0;
  virtual StatusOr<std::vector<StoredDeployment>> LoadDeployments() = 0;

  // Replaces each row's counts (one row per replica, endpoint and variant).
  virtual Status SaveFrontendCounts(const std::vector<FrontendCount>& counts) = 0;
  virtual StatusOr<std::vector<FrontendCount>> LoadFrontendCounts() = 0;

  virtual Status AppendAudit(const AuditEvent& event) = 0;
  // Newest first, at most `limit`.
  virtual StatusOr<std::vector<AuditEvent>> History(const std::string& endpoint, int limit) = 0;
};

// The prediction log: what the PredictionLog writer needs.
class PredictionStore {
 public:
  virtual ~PredictionStore() = default;

  // In one transaction.
  virtual Status WritePredictions(const std::vector<PredictionRecord>& records) = 0;
  // Deletes predictions older than `before_ms` and, past `max_rows` (0: no
  // limit), the oldest; predictions are appended in time order, so "older"
  // is decided by that order. Feedback that arrived before `before_ms` goes
  // too. Returns how many predictions went.
  virtual StatusOr<int64_t> PrunePredictions(int64_t before_ms, int64_t max_rows) = 0;
};

// Feedback (labels, rewards) and its join with the logged predictions.
class FeedbackStore {
 public:
  virtual ~FeedbackStore() = default;

  // Durable when it returns. Feedback for an id already stored merges in: a
  // new label or reward replaces the old one, a missing one keeps it.
  virtual Status WriteFeedback(const std::vector<FeedbackRecord>& records) = 0;
  // Which of `ids` have a logged prediction.
  virtual StatusOr<std::vector<std::string>> KnownPredictions(const std::vector<std::string>& ids) = 0;
  // The endpoint's served predictions from `since_ms` on that have feedback.
  virtual StatusOr<std::vector<JoinedPrediction>> Joined(const std::string& endpoint, int64_t since_ms) = 0;
  // Incremental joins. JoinCursorNow is where the store stands; JoinedSince
  // returns every served prediction whose join changed after `cursor` —
  // feedback written or updated since, and predictions logged since that
  // already had feedback — and moves `cursor` to where the store stood. A
  // prediction may come more than once (the last one holds). Reads in chunks,
  // so writers wait at most one chunk.
  virtual StatusOr<JoinCursor> JoinCursorNow() = 0;
  virtual StatusOr<std::vector<JoinedChange>> JoinedSince(JoinCursor& cursor) = 0;
  // Calls `fn` for each served (not shadow) prediction of `endpoint` logged
  // in [from_ms, to_ms), oldest first, at most `limit` of them. Reads in
  // chunks so writers wait at most one chunk. Returns how many it visited.
  using PredictionVisitor =
      std::function<void(const std::string& variant, int64_t time_ms, const std::string& outputs)>;
  virtual StatusOr<int64_t> ScanPredictions(const std::string& endpoint, int64_t from_ms, int64_t to_ms, int64_t limit,
                                            const PredictionVisitor& fn) = 0;
  // The same scan with each prediction's latency, routing key and feedback.
  using ServedVisitor = std::function<void(const ServedPrediction&)>;
  virtual StatusOr<int64_t> ScanServed(const std::string& endpoint, int64_t from_ms, int64_t to_ms, int64_t limit,
                                       const ServedVisitor& fn) = 0;
  // The served predictions logged with their inputs (--log-inputs-sample-rate),
  // `inputs` set, in the same order and bounds: what a benchmark replays.
  virtual StatusOr<int64_t> ScanSampledInputs(const std::string& endpoint, int64_t from_ms, int64_t to_ms,
                                              int64_t limit, const ServedVisitor& fn) = 0;
  // The answers of shadow `variant` of `endpoint` logged in [from_ms,
  // to_ms), each with the served answer of the same request, oldest first,
  // at most `limit`; a shadow answer whose request was not logged is left out.
  using ShadowVisitor = std::function<void(const ShadowPair&)>;
  virtual StatusOr<int64_t> ScanShadowPairs(const std::string& endpoint, const std::string& variant, int64_t from_ms,
                                            int64_t to_ms, int64_t limit, const ShadowVisitor& fn) = 0;
};

// Drift windows, one row per model version and window.
class DriftStore {
 public:
  virtual ~DriftStore() = default;

  // A merged window (replica "", epoch > 0) of a deposed leader is refused
  // by a shared store (FailedPrecondition).
  virtual Status WriteDriftWindow(const StoredDriftWindow& window) = 0;
  // The model's windows of all traffic (replica "") that ended in
  // [from_ms, to_ms], oldest first, at most the newest `limit`.
  virtual StatusOr<std::vector<StoredDriftWindow>> DriftWindows(const std::string& model, int64_t from_ms,
                                                                int64_t to_ms, int limit) = 0;
  // The partial windows of one model version (replica not ""), that ended
  // in (after_ms, to_ms], oldest first, at most the oldest `limit`.
  virtual StatusOr<std::vector<StoredDriftWindow>> ReplicaDriftWindows(const std::string& model, int64_t version,
                                                                       int64_t after_ms, int64_t to_ms, int limit) = 0;
  // When the newest window of all traffic of the version ended; 0 when there is none.
  virtual StatusOr<int64_t> LastDriftWindowEnd(const std::string& model, int64_t version) = 0;
  // Deletes windows that ended before `before_ms`; returns how many went.
  virtual StatusOr<int64_t> PruneDriftWindows(int64_t before_ms) = 0;
};

// Alert transitions.
class AlertStore {
 public:
  virtual ~AlertStore() = default;

  // Durable when it returns.
  virtual Status AppendAlertEvent(const AlertEvent& event) = 0;
  // Newest first, at most `limit`.
  virtual StatusOr<std::vector<AlertEvent>> AlertEvents(int limit) = 0;
};

// Rollout states and their analyses.
class RolloutStore {
 public:
  virtual ~RolloutStore() = default;
  // Durable when it returns (the controller persists before it acts).
  virtual Status SaveRollout(const StoredRollout& rollout) = 0;
  // Saves only while the endpoint's stored state is still `expected_state`
  // (the state the writer read or last wrote; "" = none stored): Aborted,
  // nothing written, when another replica wrote first. Fenced as SaveRollout.
  virtual Status SaveRolloutIf(const StoredRollout& rollout, const std::string& expected_state) = 0;
  virtual Status DeleteRollout(const std::string& endpoint) = 0;
  virtual StatusOr<std::vector<StoredRollout>> LoadRollouts() = 0;
  // Keeps the newest kMaxRolloutAnalyses of each endpoint.
  static constexpr int64_t kMaxRolloutAnalyses = 10'000;
  virtual Status AppendRolloutAnalysis(const StoredRolloutAnalysis& analysis) = 0;
  // The endpoint's analyses, newest first, at most `limit`.
  virtual StatusOr<std::vector<StoredRolloutAnalysis>> RolloutAnalyses(const std::string& endpoint, int limit) = 0;
  // Keeps the newest kMaxBenchmarks of each endpoint.
  static constexpr int64_t kMaxBenchmarks = 100;
  virtual Status AppendBenchmark(const StoredBenchmark& benchmark) = 0;
  // The endpoint's benchmarks, newest first, at most `limit`.
  virtual StatusOr<std::vector<StoredBenchmark>> Benchmarks(const std::string& endpoint, int limit) = 0;
};

class Store : public DeploymentStore,
              public PredictionStore,
              public FeedbackStore,
              public DriftStore,
              public AlertStore,
              public RolloutStore {};

// The 64-bit key a prediction is indexed and found by (with the id itself
// compared too, so keys may collide). For a UUIDv7 id (what Vigil
// generates) it is the id's first 64 bits, which grow with time, so the
// index is appended to; any other id is hashed.
int64_t PredictionIdKey(std::string_view id);

// Opens (creating when needed) DIR/vigil.db: WAL mode, schema migrated to
// the current version. Fails with the path and SQLite's message.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& data_dir);

// Who runs what must run once (the rollout controller, alert notification,
// retention): one replica at a time. `epoch` grows with each new leader and
// is stored beside its decisions (fencing).
class Leadership {
 public:
  virtual ~Leadership() = default;
  virtual bool IsLeader() const = 0;
  // The epoch this replica leads in; 0 while it does not lead.
  virtual int64_t Epoch() const = 0;
};

// One machine: always the leader, epoch 1.
std::unique_ptr<Leadership> SoleLeadership();

// Leadership among replicas sharing the PostgreSQL store at `url`: a
// session-level advisory lock, held on a connection of its own and checked
// every `lease` (a replica that dies loses it with its connection; one that
// cannot reach the database steps down at its next check). A replica that
// takes the lock increments the stored epoch. `on_change` is told each
// change (from the leadership thread). The thread runs until destruction.
StatusOr<std::unique_ptr<Leadership>> PostgresLeadership(const std::string& url, std::chrono::milliseconds lease,
                                                         std::function<void(bool leader, int64_t epoch)> on_change);

// Whether `where` names a PostgreSQL database (postgres:// or postgresql://).
bool IsPostgresUrl(std::string_view where);

// Connects to the PostgreSQL database at `url` (libpq's URI form,
// postgres://user[:password]@host:port/db) and migrates its schema to the
// current version under an advisory lock, so replicas that start together
// migrate once. Fails with the URL (password hidden) and the server's message.
StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url);

// The store `where` names: a postgres:// URL, else a SQLite --data-dir.
StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& where);

// `url` with its password replaced by ***, for logs and errors.
std::string RedactedUrl(const std::string& url);

// Drift windows kept in memory, the newest `per_model` of each model, for
// a server without a data directory. Thread-safe.
std::unique_ptr<DriftStore> MemoryDriftStore(size_t per_model = 100);

// Alert transitions kept in memory, the newest `keep`, for a server
// without a data directory. Thread-safe.
std::unique_ptr<AlertStore> MemoryAlertStore(size_t keep = 1000);

// Rollout states, the newest `keep` analyses of each endpoint and its
// newest kMaxBenchmarks benchmarks in memory, for a server without a data
// directory. Thread-safe.
std::unique_ptr<RolloutStore> MemoryRolloutStore(size_t keep = 1000);

// The schema version this build writes (migrations up to it are applied at open).
int CurrentSchemaVersion();

}  // namespace vigil
