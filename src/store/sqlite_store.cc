// SqliteStore: the embedded Store. One connection behind a mutex (writes
// here are rare: deployment changes and audit events); WAL mode so readers
// never block the writer; synchronous=NORMAL, which in WAL mode keeps every
// committed transaction across a process crash (kill -9) and risks only the
// last ones on power loss.
//
// SQL is kept to what PostgreSQL also accepts (ON CONFLICT upserts, BIGINT
// milliseconds, no SQLite-only functions), so the PostgreSQL store can share it.
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <mutex>

#include "core/hash.h"
#include "core/logging.h"
#include "core/thread_annotations.h"
#include "store/store.h"

namespace vigil {
namespace {

// Migration N brings the schema from version N-1 to N. Never edit one that
// shipped; add the next.
const char* const kMigrations[] = {
    // 1: deployments and their audit history.
    "CREATE TABLE deployments ("
    "  endpoint TEXT PRIMARY KEY,"
    "  spec_yaml TEXT NOT NULL,"
    "  source_text TEXT NOT NULL,"
    "  updated_ms BIGINT NOT NULL);"
    "CREATE TABLE audit_events ("
    "  id INTEGER PRIMARY KEY,"
    "  time_ms BIGINT NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  before_spec TEXT NOT NULL,"
    "  after_spec TEXT NOT NULL);"
    "CREATE INDEX audit_events_by_endpoint ON audit_events (endpoint, id);",
    // 2: the prediction log and feedback.
    "CREATE TABLE predictions ("
    "  id TEXT NOT NULL,"
    "  variant TEXT NOT NULL,"
    "  time_ms BIGINT NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  version BIGINT NOT NULL,"
    "  latency_us BIGINT NOT NULL,"
    "  shadow INTEGER NOT NULL,"
    "  outputs TEXT NOT NULL,"
    "  inputs TEXT NOT NULL,"
    "  key_hash TEXT NOT NULL,"
    "  id_hash BIGINT NOT NULL);"
    // Two indexes only: every one costs each insert. Time is append-only
    // (cheap); ids are random, so they are found through a 64-bit hash,
    // a much smaller key than the text.
    "CREATE INDEX predictions_by_id_hash ON predictions (id_hash);"
    "CREATE INDEX predictions_by_time ON predictions (time_ms);"
    "CREATE TABLE feedback ("
    "  prediction_id TEXT PRIMARY KEY,"
    "  time_ms BIGINT NOT NULL,"
    "  label DOUBLE PRECISION,"
    "  reward DOUBLE PRECISION);",
    // 3: predictions are found by PredictionIdKey (time-ordered for UUIDv7
    // ids, so the index grows at its right edge) instead of a plain hash.
    "ALTER TABLE predictions RENAME COLUMN id_hash TO id_key;"
    "DROP INDEX predictions_by_id_hash;"
    "UPDATE predictions SET id_key = vigil_id_key(id) WHERE length(id) = 36;"
    "CREATE INDEX predictions_by_id_key ON predictions (id_key);",
    // 4: the prediction log is appended in time order, so its rowid orders
    // it by time and retention needs no time index (each index costs every
    // insert). Feedback carries the key of its prediction, so joins start
    // from feedback (the smaller table) and go through predictions_by_id_key.
    "DROP INDEX predictions_by_time;"
    "ALTER TABLE feedback ADD COLUMN id_key BIGINT NOT NULL DEFAULT 0;"
    "UPDATE feedback SET id_key = vigil_id_key(prediction_id);"
    "CREATE INDEX feedback_by_time ON feedback (time_ms);",
    // 5: monitoring's closed drift windows, one row per window and model
    // version; the per-column results are JSON text.
    "CREATE TABLE drift_windows ("
    "  id INTEGER PRIMARY KEY,"
    "  model TEXT NOT NULL,"
    "  version BIGINT NOT NULL,"
    "  start_ms BIGINT NOT NULL,"
    "  end_ms BIGINT NOT NULL,"
    "  rows BIGINT NOT NULL,"
    "  reference_rows BIGINT NOT NULL,"
    "  reference_source TEXT NOT NULL,"
    "  drifted_share DOUBLE PRECISION NOT NULL,"
    "  dataset_drift INTEGER NOT NULL,"
    "  columns TEXT NOT NULL);"
    "CREATE INDEX drift_windows_by_model ON drift_windows (model, end_ms);",
    // 6: alert transitions with their evidence.
    "CREATE TABLE alert_events ("
    "  id INTEGER PRIMARY KEY,"
    "  time_ms BIGINT NOT NULL,"
    "  alertname TEXT NOT NULL,"
    "  fingerprint TEXT NOT NULL,"
    "  labels TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  statistic TEXT NOT NULL,"
    "  value DOUBLE PRECISION NOT NULL,"
    "  threshold DOUBLE PRECISION NOT NULL,"
    "  window_start_ms BIGINT NOT NULL,"
    "  window_end_ms BIGINT NOT NULL,"
    "  summary TEXT NOT NULL);",
    // 7: feedback carries the order it was written (or last updated) in, so
    // quality can be kept up to date from what changed (Store::JoinedSince).
    "ALTER TABLE feedback ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;"
    "UPDATE feedback SET seq = rowid;"
    "CREATE INDEX feedback_by_seq ON feedback (seq);",
    // 8: rollout states (the controller's, as JSON text) and every analysis
    // with its evidence.
    "CREATE TABLE rollouts ("
    "  endpoint TEXT PRIMARY KEY,"
    "  state TEXT NOT NULL,"
    "  updated_ms BIGINT NOT NULL);"
    "CREATE TABLE rollout_analyses ("
    "  id INTEGER PRIMARY KEY,"
    "  time_ms BIGINT NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  candidate TEXT NOT NULL,"
    "  step BIGINT NOT NULL,"
    "  verdict TEXT NOT NULL,"
    "  evidence TEXT NOT NULL);"
    "CREATE INDEX rollout_analyses_by_endpoint ON rollout_analyses (endpoint, id);",
    // 9: benchmarks of an endpoint's competing models on logged traffic.
    "CREATE TABLE benchmarks ("
    "  id INTEGER PRIMARY KEY,"
    "  time_ms BIGINT NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  trigger_text TEXT NOT NULL,"
    "  result TEXT NOT NULL);"
    "CREATE INDEX benchmarks_by_endpoint ON benchmarks (endpoint, id);",
    // 10: the overload rung that answered each prediction; degraded answers
    // (rung > 0) are left out of quality per variant, rollouts and benchmarks.
    "ALTER TABLE predictions ADD COLUMN rung INTEGER NOT NULL DEFAULT 0;",
    // 11: the leader's epoch (Leadership), and the epoch beside each rollout
    // decision (fencing: a shared store refuses a deposed leader's writes).
    "CREATE TABLE leader (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL);"
    "INSERT INTO leader (id, epoch) VALUES (1, 0);"
    "ALTER TABLE rollouts ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE rollout_analyses ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;",
    // 12: replicas' partial drift windows with their counts, merged by the
    // leader into windows of all traffic (replica '').
    "ALTER TABLE drift_windows ADD COLUMN replica TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE drift_windows ADD COLUMN counts TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE drift_windows ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;"
    "CREATE INDEX drift_windows_by_version ON drift_windows (model, version, replica, end_ms);"
    // and each replica's frontend counts per endpoint variant.
    "CREATE TABLE frontend_counts ("
    "  replica TEXT NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  variant TEXT NOT NULL,"
    "  since_ms BIGINT NOT NULL,"
    "  requests BIGINT NOT NULL,"
    "  errors BIGINT NOT NULL,"
    "  PRIMARY KEY (replica, endpoint, variant));",
};

// vigil_id_key(id): PredictionIdKey in SQL, for migrations 3 and 4.
void SqlIdKey(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  const int n = sqlite3_value_bytes(argv[0]);
  sqlite3_result_int64(ctx, PredictionIdKey(std::string_view(text ? text : "", static_cast<size_t>(n))));
}

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Status ok() const {
    return rc_ == SQLITE_OK ? Status::Ok() : Internal(std::string("SQLite: ") + sqlite3_errmsg(db_));
  }
  // Binds without a copy: `s` must outlive the statement's next Step. A
  // temporary would not, so binding one does not compile.
  Statement& Bind(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
    return *this;
  }
  Statement& Bind(int i, std::string&& s) = delete;
  Statement& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& Bind(int i, const std::optional<double>& v) {
    if (v) {
      sqlite3_bind_double(stmt_, i, *v);
    } else {
      sqlite3_bind_null(stmt_, i);
    }
    return *this;
  }
  // Runs again with new bindings.
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::optional<double> Double(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_double(stmt_, col);
  }
  // SQLITE_ROW, SQLITE_DONE, or an error code.
  int Step() { return sqlite3_step(stmt_); }
  Status Run() {
    VIGIL_RETURN_IF_ERROR(ok());
    const int rc = Step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Internal(std::string("SQLite: ") + sqlite3_errmsg(db_));
    return Status::Ok();
  }
  // Calls `row()` for each result row.
  template <typename F>
  Status ForEachRow(F row) {
    VIGIL_RETURN_IF_ERROR(ok());
    int rc;
    while ((rc = Step()) == SQLITE_ROW) row();
    if (rc != SQLITE_DONE) return Internal(std::string("SQLite: ") + sqlite3_errmsg(db_));
    return Status::Ok();
  }
  std::string Text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(sqlite3* db) : db_(db) {}
  ~SqliteStore() override { sqlite3_close_v2(db_); }

  Status Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string message = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      return Internal("SQLite: " + message);
    }
    return Status::Ok();
  }

  Status Migrate() {
    VIGIL_RETURN_IF_ERROR(Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
    int64_t version = 0;
    {
      Statement q(db_, "SELECT version FROM schema_version");
      VIGIL_RETURN_IF_ERROR(q.ok());
      if (q.Step() == SQLITE_ROW) version = q.Int(0);
    }
    const int64_t latest = CurrentSchemaVersion();
    if (version > latest) {
      return FailedPrecondition("the database has schema version " + std::to_string(version) +
                                ", newer than this build's " + std::to_string(latest) + "; use a newer vigil");
    }
    for (int64_t v = version + 1; v <= latest; ++v) {
      VIGIL_RETURN_IF_ERROR(Exec("BEGIN"));
      Status s = Exec(kMigrations[v - 1]);
      if (s.ok())
        s = Exec(v == 1 ? "INSERT INTO schema_version (version) VALUES (1)"
                        : "UPDATE schema_version SET version = " + std::to_string(v));
      if (!s.ok()) {
        (void)Exec("ROLLBACK");
        return s.WithContext("schema migration " + std::to_string(v));
      }
      VIGIL_RETURN_IF_ERROR(Exec("COMMIT"));
      spdlog::info("event=store_migrated version={}", v);
    }
    return Status::Ok();
  }

  Status SaveDeployment(const StoredDeployment& d) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "INSERT INTO deployments (endpoint, spec_yaml, source_text, updated_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (endpoint) DO UPDATE SET spec_yaml = excluded.spec_yaml, "
                "source_text = excluded.source_text, updated_ms = excluded.updated_ms");
    return q.Bind(1, d.endpoint).Bind(2, d.spec_yaml).Bind(3, d.source_text).Bind(4, d.updated_ms).Run();
  }

  StatusOr<bool> SaveDeploymentIf(const StoredDeployment& d, const std::string& expected_yaml) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "UPDATE deployments SET spec_yaml = ?, source_text = ?, updated_ms = ? WHERE endpoint = ? AND "
                "spec_yaml = ?");
    VIGIL_RETURN_IF_ERROR(q.Bind(1, d.spec_yaml)
                              .Bind(2, d.source_text)
                              .Bind(3, d.updated_ms)
                              .Bind(4, d.endpoint)
                              .Bind(5, expected_yaml)
                              .Run());
    return sqlite3_changes(db_) == 1;
  }

  Status SaveFrontendCounts(const std::vector<FrontendCount>& counts) override {
    MutexLock lock(mu_);
    VIGIL_RETURN_IF_ERROR(Exec("BEGIN"));
    for (const FrontendCount& c : counts) {
      Statement q(db_,
                  "INSERT INTO frontend_counts (replica, endpoint, variant, since_ms, requests, errors) VALUES (?, ?, "
                  "?, ?, ?, ?) ON CONFLICT (replica, endpoint, variant) DO UPDATE SET since_ms = excluded.since_ms, "
                  "requests = excluded.requests, errors = excluded.errors");
      Status s = q.Bind(1, c.replica)
                     .Bind(2, c.endpoint)
                     .Bind(3, c.variant)
                     .Bind(4, c.since_ms)
                     .Bind(5, c.requests)
                     .Bind(6, c.errors)
                     .Run();
      if (!s.ok()) {
        (void)Exec("ROLLBACK");
        return s;
      }
    }
    return Exec("COMMIT");
  }

  StatusOr<std::vector<FrontendCount>> LoadFrontendCounts() override {
    MutexLock lock(mu_);
    Statement q(db_, "SELECT replica, endpoint, variant, since_ms, requests, errors FROM frontend_counts");
    std::vector<FrontendCount> out;
    VIGIL_RETURN_IF_ERROR(q.ForEachRow([&] {
      out.push_back({q.Text(0), q.Text(1), q.Text(2), q.Int(3), q.Int(4), q.Int(5)});
    }));
    return out;
  }

  Status DeleteDeployment(const std::string& endpoint) override {
    MutexLock lock(mu_);
    Statement q(db_, "DELETE FROM deployments WHERE endpoint = ?");
    return q.Bind(1, endpoint).Run();
  }

  StatusOr<std::vector<StoredDeployment>> LoadDeployments() override {
    MutexLock lock(mu_);
    Statement q(db_, "SELECT endpoint, spec_yaml, source_text, updated_ms FROM deployments ORDER BY endpoint");
    std::vector<StoredDeployment> out;
    VIGIL_RETURN_IF_ERROR(q.ForEachRow([&] { out.push_back({q.Text(0), q.Text(1), q.Text(2), q.Int(3)}); }));
    return out;
  }

  Status AppendAudit(const AuditEvent& e) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "INSERT INTO audit_events (time_ms, endpoint, actor, action, detail, before_spec, after_spec) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)");
    return q.Bind(1, e.time_ms)
        .Bind(2, e.endpoint)
        .Bind(3, e.actor)
        .Bind(4, e.action)
        .Bind(5, e.detail)
        .Bind(6, e.before)
        .Bind(7, e.after)
        .Run();
  }

  // Runs `body` in a transaction under the lock; rolls back on error.
  // `body` runs with mu_ held (the caller's); its lambda says so with
  // REQUIRES(mu_), as std::function does not carry the annotation.
  Status Transaction(const std::function<Status()>& body) REQUIRES(mu_) {
    VIGIL_RETURN_IF_ERROR(Exec("BEGIN"));
    Status s = body();
    if (s.ok()) s = Exec("COMMIT");
    if (!s.ok()) (void)Exec("ROLLBACK");
    return s;
  }

  Status WritePredictions(const std::vector<PredictionRecord>& records) override {
    MutexLock lock(mu_);
    return Transaction([&]() -> Status {
      Statement q(db_,
                  "INSERT INTO predictions (id, variant, time_ms, endpoint, model, version, latency_us, shadow, "
                  "outputs, inputs, key_hash, id_key, rung) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      VIGIL_RETURN_IF_ERROR(q.ok());
      for (const auto& r : records) {
        q.Bind(1, r.id)
            .Bind(2, r.variant)
            .Bind(3, r.time_ms)
            .Bind(4, r.endpoint)
            .Bind(5, r.model)
            .Bind(6, r.version)
            .Bind(7, r.latency_us)
            .Bind(8, static_cast<int64_t>(r.shadow))
            .Bind(9, r.outputs)
            .Bind(10, r.inputs)
            .Bind(11, r.key_hash)
            .Bind(12, PredictionIdKey(r.id))
            .Bind(13, static_cast<int64_t>(r.rung));
        VIGIL_RETURN_IF_ERROR(q.Run());
        q.Reset();
      }
      return Status::Ok();
    });
  }

  Status WriteFeedback(const std::vector<FeedbackRecord>& records) override {
    MutexLock lock(mu_);
    return Transaction([&]() REQUIRES(mu_) -> Status {
      VIGIL_ASSIGN_OR_RETURN(int64_t seq, MaxFeedbackSeq());
      Statement q(db_,
                  "INSERT INTO feedback (prediction_id, time_ms, label, reward, id_key, seq) VALUES (?, ?, ?, ?, ?, ?) "
                  "ON CONFLICT (prediction_id) DO UPDATE SET time_ms = excluded.time_ms, "
                  "label = COALESCE(excluded.label, feedback.label), "
                  "reward = COALESCE(excluded.reward, feedback.reward), seq = excluded.seq");
      VIGIL_RETURN_IF_ERROR(q.ok());
      for (const auto& r : records) {
        q.Bind(1, r.prediction_id)
            .Bind(2, r.time_ms)
            .Bind(3, r.label)
            .Bind(4, r.reward)
            .Bind(5, PredictionIdKey(r.prediction_id))
            .Bind(6, ++seq);
        VIGIL_RETURN_IF_ERROR(q.Run());
        q.Reset();
      }
      return Status::Ok();
    });
  }

  StatusOr<std::vector<std::string>> KnownPredictions(const std::vector<std::string>& ids) override {
    MutexLock lock(mu_);
    Statement q(db_, "SELECT 1 FROM predictions WHERE id_key = ? AND id = ? LIMIT 1");
    VIGIL_RETURN_IF_ERROR(q.ok());
    std::vector<std::string> known;
    for (const auto& id : ids) {
      q.Bind(1, PredictionIdKey(id)).Bind(2, id);
      if (q.Step() == SQLITE_ROW) known.push_back(id);
      q.Reset();
    }
    return known;
  }

  StatusOr<std::vector<JoinedPrediction>> Joined(const std::string& endpoint, int64_t since_ms) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "SELECT p.variant, p.outputs, f.label, f.reward, p.time_ms, f.time_ms, p.rowid FROM feedback f JOIN "
                "predictions p ON p.id_key = f.id_key AND p.id = f.prediction_id "
                "WHERE p.endpoint = ? AND p.shadow = 0 AND p.rung = 0 AND p.time_ms >= ?");
    q.Bind(1, endpoint).Bind(2, since_ms);
    std::vector<JoinedPrediction> out;
    VIGIL_RETURN_IF_ERROR(q.ForEachRow([&] {
      out.push_back({q.Text(0), q.Text(1), q.Double(2), q.Double(3), q.Int(4), q.Int(5), q.Int(6)});
    }));
    return out;
  }

  StatusOr<JoinCursor> JoinCursorNow() override {
    MutexLock lock(mu_);
    return CursorNow();
  }

  StatusOr<std::vector<JoinedChange>> JoinedSince(JoinCursor& cursor) override {
    constexpr int64_t kChunk = 20000;  // rows per locked read
    JoinCursor now;
    {
      MutexLock lock(mu_);
      VIGIL_ASSIGN_OR_RETURN(now, CursorNow());
    }
    std::vector<JoinedChange> out;
    // The columns both reads return, in this order.
    constexpr const char* kColumns =
        "SELECT p.endpoint, p.variant, p.outputs, f.label, f.reward, p.time_ms, f.time_ms, p.rowid ";
    auto read = [&](Statement& q) {
      return q.ForEachRow([&] {
        out.push_back({q.Text(0), {q.Text(1), q.Text(2), q.Double(3), q.Double(4), q.Int(5), q.Int(6), q.Int(7)}});
      });
    };
    // Feedback written or updated since: through its seq index.
    for (int64_t next = cursor.feedback_seq; next < now.feedback_seq; next += kChunk) {
      MutexLock lock(mu_);
      Statement q(db_, (std::string(kColumns) +
                        "FROM feedback f JOIN predictions p ON p.id_key = f.id_key AND p.id = f.prediction_id "
                        "WHERE f.seq > ? AND f.seq <= ? AND p.shadow = 0 AND p.rung = 0")
                           .c_str());
      q.Bind(1, next).Bind(2, std::min(now.feedback_seq, next + kChunk));
      VIGIL_RETURN_IF_ERROR(read(q));
    }
    // Predictions logged since whose feedback came first: a rowid range.
    for (int64_t next = cursor.prediction_row; next < now.prediction_row; next += kChunk) {
      MutexLock lock(mu_);
      Statement q(db_, (std::string(kColumns) +
                        "FROM predictions p JOIN feedback f ON f.prediction_id = p.id "
                        "WHERE p.rowid > ? AND p.rowid <= ? AND p.shadow = 0 AND p.rung = 0 AND f.seq <= ?")
                           .c_str());
      q.Bind(1, next).Bind(2, std::min(now.prediction_row, next + kChunk)).Bind(3, now.feedback_seq);
      VIGIL_RETURN_IF_ERROR(read(q));
    }
    cursor = now;
    return out;
  }

  StatusOr<int64_t> ScanPredictions(const std::string& endpoint, int64_t from_ms, int64_t to_ms, int64_t limit,
                                    const PredictionVisitor& fn) override {
    return ScanChunks(endpoint, from_ms, to_ms, limit,
                      "SELECT variant, time_ms, outputs FROM predictions WHERE rowid >= ? AND rowid < ? AND "
                      "endpoint = ? AND shadow = 0 ORDER BY rowid LIMIT ?",
                      [&](Statement& q) { fn(q.Text(0), q.Int(1), q.Text(2)); });
  }

  StatusOr<int64_t> ScanServed(const std::string& endpoint, int64_t from_ms, int64_t to_ms, int64_t limit,
                               const ServedVisitor& fn) override {
    return ScanChunks(
        endpoint, from_ms, to_ms, limit,
        "SELECT p.variant, p.time_ms, p.latency_us, p.key_hash, p.outputs, f.label, f.reward, "
        "COALESCE(f.time_ms, 0), p.rowid FROM predictions p LEFT JOIN feedback f ON "
        "f.prediction_id = p.id WHERE p.rowid >= ? AND p.rowid < ? AND p.endpoint = ? AND "
        "p.shadow = 0 AND p.rung = 0 ORDER BY p.rowid LIMIT ?",
        [&](Statement& q) {
          fn({q.Text(0), q.Int(1), q.Int(2), q.Text(3), q.Text(4), q.Double(5), q.Double(6), q.Int(7), q.Int(8), ""});
        });
  }

  StatusOr<int64_t> ScanSampledInputs(const std::string& endpoint, int64_t from_ms, int64_t to_ms, int64_t limit,
                                      const ServedVisitor& fn) override {
    return ScanChunks(endpoint, from_ms, to_ms, limit,
                      "SELECT p.variant, p.time_ms, p.latency_us, p.key_hash, p.outputs, f.label, f.reward, "
                      "COALESCE(f.time_ms, 0), p.rowid, p.inputs FROM predictions p LEFT JOIN feedback f ON "
                      "f.prediction_id = p.id WHERE p.rowid >= ? AND p.rowid < ? AND p.endpoint = ? AND "
                      "p.shadow = 0 AND p.rung = 0 AND p.inputs != '' ORDER BY p.rowid LIMIT ?",
                      [&](Statement& q) {
                        fn({q.Text(0), q.Int(1), q.Int(2), q.Text(3), q.Text(4), q.Double(5), q.Double(6), q.Int(7),
                            q.Int(8), q.Text(9)});
                      });
  }

  StatusOr<int64_t> PrunePredictions(int64_t before_ms, int64_t max_rows) override {
    MutexLock lock(mu_);
    // Rows are appended in time order: everything before the first row at
    // or after `before_ms` goes.
    auto range = RowidRange(before_ms, before_ms);
    if (!range.ok()) return range.status();
    const int64_t last = last_rowid_;
    if (last == 0) return int64_t{0};
    int64_t cut = range->first;
    if (max_rows > 0) cut = std::max(cut, last + 1 - max_rows);
    Statement remove(db_, "DELETE FROM predictions WHERE rowid < ?");
    VIGIL_RETURN_IF_ERROR(remove.Bind(1, cut).Run());
    const int64_t removed = sqlite3_changes(db_);
    Statement old_feedback(db_, "DELETE FROM feedback WHERE time_ms < ?");
    VIGIL_RETURN_IF_ERROR(old_feedback.Bind(1, before_ms).Run());
    return removed;
  }

  Status WriteDriftWindow(const StoredDriftWindow& w) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "INSERT INTO drift_windows (model, version, start_ms, end_ms, rows, reference_rows, reference_source, "
                "drifted_share, dataset_drift, columns, replica, counts, epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?, ?)");
    return q.Bind(1, w.model)
        .Bind(2, w.version)
        .Bind(3, w.start_ms)
        .Bind(4, w.end_ms)
        .Bind(5, w.rows)
        .Bind(6, w.reference_rows)
        .Bind(7, w.reference_source)
        .Bind(8, std::optional<double>(w.drifted_share))
        .Bind(9, static_cast<int64_t>(w.dataset_drift))
        .Bind(10, w.columns)
        .Bind(11, w.replica)
        .Bind(12, w.counts)
        .Bind(13, w.epoch)
        .Run();
  }

  StatusOr<std::vector<StoredDriftWindow>> DriftWindows(const std::string& model, int64_t from_ms, int64_t to_ms,
                                                        int limit) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "SELECT model, version, start_ms, end_ms, rows, reference_rows, reference_source, drifted_share, "
                "dataset_drift, columns, replica, counts, epoch FROM (SELECT * FROM drift_windows WHERE model = ? AND "
                "replica = '' AND end_ms >= ? AND end_ms <= ? ORDER BY end_ms DESC, id DESC LIMIT ?) AS newest ORDER "
                "BY end_ms, id");
    q.Bind(1, model).Bind(2, from_ms).Bind(3, to_ms).Bind(4, static_cast<int64_t>(limit));
    return ReadDriftWindows(q);
  }

  StatusOr<std::vector<StoredDriftWindow>> ReplicaDriftWindows(const std::string& model, int64_t version,
                                                               int64_t after_ms, int64_t to_ms, int limit) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "SELECT model, version, start_ms, end_ms, rows, reference_rows, reference_source, drifted_share, "
                "dataset_drift, columns, replica, counts, epoch FROM drift_windows WHERE model = ? AND version = ? AND "
                "replica <> '' AND end_ms > ? AND end_ms <= ? ORDER BY end_ms, id LIMIT ?");
    q.Bind(1, model).Bind(2, version).Bind(3, after_ms).Bind(4, to_ms).Bind(5, static_cast<int64_t>(limit));
    return ReadDriftWindows(q);
  }

  StatusOr<int64_t> LastDriftWindowEnd(const std::string& model, int64_t version) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "SELECT COALESCE(MAX(end_ms), 0) FROM drift_windows WHERE model = ? AND version = ? AND replica = ''");
    q.Bind(1, model).Bind(2, version);
    int64_t last = 0;
    VIGIL_RETURN_IF_ERROR(q.ForEachRow([&] { last = q.Int(0); }));
    return last;
  }

  StatusOr<int64_t> PruneDriftWindows(int64_t before_ms) override {
    MutexLock lock(mu_);
    Statement q(db_, "DELETE FROM drift_windows WHERE end_ms < ?");
    VIGIL_RETURN_IF_ERROR(q.Bind(1, before_ms).Run());
    return static_cast<int64_t>(sqlite3_changes(db_));
  }

  Status AppendAlertEvent(const AlertEvent& e) override {
    MutexLock lock(mu_);
    Statement q(
        db_,
        "INSERT INTO alert_events (time_ms, alertname, fingerprint, labels, state, statistic, value, threshold, "
        "window_start_ms, window_end_ms, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    return q.Bind(1, e.time_ms)
        .Bind(2, e.alertname)
        .Bind(3, e.fingerprint)
        .Bind(4, e.labels)
        .Bind(5, e.state)
        .Bind(6, e.statistic)
        .Bind(7, std::optional<double>(e.value))
        .Bind(8, std::optional<double>(e.threshold))
        .Bind(9, e.window_start_ms)
        .Bind(10, e.window_end_ms)
        .Bind(11, e.summary)
        .Run();
  }

  StatusOr<std::vector<AlertEvent>> AlertEvents(int limit) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "SELECT id, time_ms, alertname, fingerprint, labels, state, statistic, value, threshold, "
                "window_start_ms, window_end_ms, summary FROM alert_events ORDER BY id DESC LIMIT ?");
    q.Bind(1, static_cast<int64_t>(limit));
    std::vector<AlertEvent> out;
    VIGIL_RETURN_IF_ERROR(q.ForEachRow([&] {
      out.push_back({q.Int(0), q.Int(1), q.Text(2), q.Text(3), q.Text(4), q.Text(5), q.Text(6), *q.Double(7),
                     *q.Double(8), q.Int(9), q.Int(10), q.Text(11)});
    }));
    return out;
  }

  StatusOr<std::vector<AuditEvent>> History(const std::string& endpoint, int limit) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "SELECT id, time_ms, endpoint, actor, action, detail, before_spec, after_spec FROM audit_events "
                "WHERE endpoint = ? ORDER BY id DESC LIMIT ?");
    q.Bind(1, endpoint).Bind(2, static_cast<int64_t>(limit));
    std::vector<AuditEvent> out;
    VIGIL_RETURN_IF_ERROR(q.ForEachRow([&] {
      out.push_back({q.Int(0), q.Int(1), q.Text(2), q.Text(3), q.Text(4), q.Text(5), q.Text(6), q.Text(7)});
    }));
    return out;
  }

  StatusOr<int64_t> ScanShadowPairs(const std::string& endpoint, const std::string& variant, int64_t from_ms,
                                    int64_t to_ms, int64_t limit, const ShadowVisitor& fn) override {
    return ScanChunks(
        endpoint, from_ms, to_ms, limit,
        "SELECT s.time_ms, p.variant, p.outputs, s.outputs, p.latency_us, s.latency_us, f.label, "
        "f.reward FROM predictions s JOIN predictions p ON p.id_key = s.id_key AND p.id = s.id AND "
        "p.shadow = 0 AND p.rung = 0 AND p.endpoint = s.endpoint LEFT JOIN feedback f ON f.prediction_id = s.id "
        "WHERE s.rowid >= ? AND s.rowid < ? AND s.endpoint = ? AND s.shadow = 1 AND s.variant = ? "
        "ORDER BY s.rowid LIMIT ?",
        [&](Statement& q) {
          fn({q.Int(0), q.Text(1), q.Text(2), q.Text(3), q.Int(4), q.Int(5), q.Double(6), q.Double(7)});
        },
        &variant);
  }

  Status SaveRollout(const StoredRollout& r) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "INSERT INTO rollouts (endpoint, state, updated_ms, epoch) VALUES (?, ?, ?, ?) ON CONFLICT (endpoint) "
                "DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms, epoch = excluded.epoch");
    return q.Bind(1, r.endpoint).Bind(2, r.state).Bind(3, r.updated_ms).Bind(4, r.epoch).Run();
  }

  Status SaveRolloutIf(const StoredRollout& r, const std::string& expected_state) override {
    MutexLock lock(mu_);
    // One writer process: the check and the write under one lock.
    Statement read(db_, "SELECT state FROM rollouts WHERE endpoint = ?");
    std::string stored;
    VIGIL_RETURN_IF_ERROR(read.Bind(1, r.endpoint).ForEachRow([&] { stored = read.Text(0); }));
    if (stored != expected_state) return Aborted("the rollout state of '" + r.endpoint + "' was changed meanwhile");
    Statement q(db_,
                "INSERT INTO rollouts (endpoint, state, updated_ms, epoch) VALUES (?, ?, ?, ?) ON CONFLICT (endpoint) "
                "DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms, epoch = excluded.epoch");
    return q.Bind(1, r.endpoint).Bind(2, r.state).Bind(3, r.updated_ms).Bind(4, r.epoch).Run();
  }

  Status DeleteRollout(const std::string& endpoint) override {
    MutexLock lock(mu_);
    Statement q(db_, "DELETE FROM rollouts WHERE endpoint = ?");
    return q.Bind(1, endpoint).Run();
  }

  StatusOr<std::vector<StoredRollout>> LoadRollouts() override {
    MutexLock lock(mu_);
    Statement q(db_, "SELECT endpoint, state, updated_ms, epoch FROM rollouts ORDER BY endpoint");
    std::vector<StoredRollout> out;
    VIGIL_RETURN_IF_ERROR(q.ForEachRow([&] { out.push_back({q.Text(0), q.Text(1), q.Int(2), q.Int(3)}); }));
    return out;
  }

  Status AppendRolloutAnalysis(const StoredRolloutAnalysis& a) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "INSERT INTO rollout_analyses (time_ms, endpoint, candidate, step, verdict, evidence, epoch) VALUES "
                "(?, ?, ?, ?, ?, ?, ?)");
    VIGIL_RETURN_IF_ERROR(q.Bind(1, a.time_ms)
                              .Bind(2, a.endpoint)
                              .Bind(3, a.candidate)
                              .Bind(4, a.step)
                              .Bind(5, a.verdict)
                              .Bind(6, a.evidence)
                              .Bind(7, a.epoch)
                              .Run());
    // The newest kMaxRolloutAnalyses per endpoint are kept (a rollout
    // analysed every second writes 86,400 a day); trimmed every 100th write.
    if (++analyses_written_ % 100 != 0) return Status::Ok();
    Statement trim(db_,
                   "DELETE FROM rollout_analyses WHERE endpoint = ? AND id <= (SELECT id FROM rollout_analyses "
                   "WHERE endpoint = ? ORDER BY id DESC LIMIT 1 OFFSET ?)");
    return trim.Bind(1, a.endpoint).Bind(2, a.endpoint).Bind(3, kMaxRolloutAnalyses).Run();
  }

  StatusOr<std::vector<StoredRolloutAnalysis>> RolloutAnalyses(const std::string& endpoint, int limit) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "SELECT id, time_ms, endpoint, candidate, step, verdict, evidence, epoch FROM rollout_analyses WHERE "
                "endpoint = ? ORDER BY id DESC LIMIT ?");
    q.Bind(1, endpoint).Bind(2, static_cast<int64_t>(limit));
    std::vector<StoredRolloutAnalysis> out;
    VIGIL_RETURN_IF_ERROR(q.ForEachRow([&] {
      out.push_back({q.Int(0), q.Int(1), q.Text(2), q.Text(3), q.Int(4), q.Text(5), q.Text(6), q.Int(7)});
    }));
    return out;
  }

  Status AppendBenchmark(const StoredBenchmark& b) override {
    MutexLock lock(mu_);
    Statement q(db_, "INSERT INTO benchmarks (time_ms, endpoint, trigger_text, result) VALUES (?, ?, ?, ?)");
    VIGIL_RETURN_IF_ERROR(q.Bind(1, b.time_ms).Bind(2, b.endpoint).Bind(3, b.trigger).Bind(4, b.result).Run());
    Statement trim(db_,
                   "DELETE FROM benchmarks WHERE endpoint = ? AND id <= (SELECT id FROM benchmarks WHERE endpoint = "
                   "? ORDER BY id DESC LIMIT 1 OFFSET ?)");
    return trim.Bind(1, b.endpoint).Bind(2, b.endpoint).Bind(3, kMaxBenchmarks).Run();
  }

  StatusOr<std::vector<StoredBenchmark>> Benchmarks(const std::string& endpoint, int limit) override {
    MutexLock lock(mu_);
    Statement q(db_,
                "SELECT id, time_ms, endpoint, trigger_text, result FROM benchmarks WHERE endpoint = ? ORDER BY id "
                "DESC LIMIT ?");
    q.Bind(1, endpoint).Bind(2, static_cast<int64_t>(limit));
    std::vector<StoredBenchmark> out;
    VIGIL_RETURN_IF_ERROR(q.ForEachRow([&] { out.push_back({q.Int(0), q.Int(1), q.Text(2), q.Text(3), q.Text(4)}); }));
    return out;
  }

 private:
  // The rows of a drift-window SELECT (the 13 columns StoredDriftWindow holds, in its order).
  static StatusOr<std::vector<StoredDriftWindow>> ReadDriftWindows(Statement& q) {
    std::vector<StoredDriftWindow> out;
    VIGIL_RETURN_IF_ERROR(q.ForEachRow([&] {
      out.push_back({q.Text(0), q.Int(1), q.Int(2), q.Int(3), q.Int(4), q.Int(5), q.Text(6), *q.Double(7),
                     q.Int(8) != 0, q.Text(9), q.Text(10), q.Text(11), q.Int(12)});
    }));
    return out;
  }

  int64_t analyses_written_ GUARDED_BY(mu_) = 0;

  // Runs `sql` (binding rowid from, rowid to, endpoint, limit) over the
  // rows logged in [from_ms, to_ms), one chunk of rowids per locked read so
  // writers wait at most one chunk; `row` sees each result row.
  // With `variant`, it is bound after the endpoint (and the limit moves to 5).
  template <typename Row>
  StatusOr<int64_t> ScanChunks(const std::string& endpoint, int64_t from_ms, int64_t to_ms, int64_t limit,
                               const char* sql, const Row& row, const std::string* variant = nullptr) EXCLUDES(mu_) {
    constexpr int64_t kChunk = 20000;
    int64_t next = 0, end = 0;
    {
      MutexLock lock(mu_);
      auto range = RowidRange(from_ms, to_ms);
      if (!range.ok()) return range.status();
      std::tie(next, end) = *range;
    }
    int64_t visited = 0;
    while (next < end && visited < limit) {
      MutexLock lock(mu_);
      Statement q(db_, sql);
      const int64_t stop = std::min(end, next + kChunk);
      q.Bind(1, next).Bind(2, stop).Bind(3, endpoint);
      if (variant) {
        q.Bind(4, *variant).Bind(5, limit - visited);
      } else {
        q.Bind(4, limit - visited);
      }
      VIGIL_RETURN_IF_ERROR(q.ForEachRow([&] {
        row(q);
        ++visited;
      }));
      next = stop;
    }
    return visited;
  }

  // The highest feedback seq written so far (0 without feedback).
  StatusOr<int64_t> MaxFeedbackSeq() REQUIRES(mu_) {
    Statement q(db_, "SELECT COALESCE(MAX(seq), 0) FROM feedback");
    VIGIL_RETURN_IF_ERROR(q.ok());
    if (q.Step() != SQLITE_ROW) return Internal(std::string("SQLite: ") + sqlite3_errmsg(db_));
    return q.Int(0);
  }

  StatusOr<JoinCursor> CursorNow() REQUIRES(mu_) {
    JoinCursor c;
    VIGIL_ASSIGN_OR_RETURN(c.feedback_seq, MaxFeedbackSeq());
    Statement q(db_, "SELECT COALESCE(MAX(rowid), 0) FROM predictions");
    VIGIL_RETURN_IF_ERROR(q.ok());
    if (q.Step() != SQLITE_ROW) return Internal(std::string("SQLite: ") + sqlite3_errmsg(db_));
    c.prediction_row = q.Int(0);
    return c;
  }

  // The rowids of predictions logged in [from_ms, to_ms), as [first, end):
  // rows are appended in time order, so both ends are found by bisecting
  // rowids. Sets last_rowid_ (0 when the table is empty).
  StatusOr<std::pair<int64_t, int64_t>> RowidRange(int64_t from_ms, int64_t to_ms) REQUIRES(mu_) {
    Statement bounds(db_, "SELECT min(rowid), max(rowid) FROM predictions");
    VIGIL_RETURN_IF_ERROR(bounds.ok());
    last_rowid_ = 0;
    if (bounds.Step() != SQLITE_ROW || bounds.IsNull(0)) return std::pair<int64_t, int64_t>{0, 0};
    const int64_t first = bounds.Int(0);
    last_rowid_ = bounds.Int(1);
    Statement time_at(db_, "SELECT time_ms FROM predictions WHERE rowid >= ? ORDER BY rowid LIMIT 1");
    VIGIL_RETURN_IF_ERROR(time_at.ok());
    const int64_t last = last_rowid_;
    auto first_at = [&](int64_t ms) {  // the first rowid logged at or after `ms`
      int64_t lo = first, hi = last + 1;
      while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        time_at.Bind(1, mid);
        const bool before = time_at.Step() == SQLITE_ROW && time_at.Int(0) < ms;
        time_at.Reset();
        if (before) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      return lo;
    };
    const int64_t begin = first_at(from_ms);
    return std::pair<int64_t, int64_t>{begin, to_ms <= from_ms ? begin : first_at(to_ms)};
  }

  sqlite3* db_;
  Mutex mu_;                                // every call holds it: the connection is opened without SQLite's own mutex
  int64_t last_rowid_ GUARDED_BY(mu_) = 0;  // of predictions, as RowidRange last saw it
};

}  // namespace

int CurrentSchemaVersion() { return static_cast<int>(std::size(kMigrations)); }

StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return Unavailable("cannot create --data-dir " + data_dir + ": " + ec.message());
  const std::string path = (std::filesystem::path(data_dir) / "vigil.db").string();
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Unavailable("cannot open the store " + path + ": " + message);
  }
  auto store = std::make_unique<SqliteStore>(db);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_create_function_v2(db, "vigil_id_key", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr, SqlIdKey, nullptr,
                             nullptr, nullptr);
  // A 64 MiB page cache and checkpoints every ~40 MiB of WAL keep the
  // prediction log's inserts off the disk's read path.
  for (const char* pragma : {"PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON",
                             "PRAGMA cache_size = -65536", "PRAGMA wal_autocheckpoint = 10000"}) {
    if (Status s = store->Exec(pragma); !s.ok()) return s.WithContext("opening the store " + path);
  }
  if (Status s = store->Migrate(); !s.ok()) return s.WithContext("opening the store " + path);
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vigil
