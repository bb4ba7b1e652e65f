// PostgresStore: the Store that replicas share (--store postgres://...).
//
// The same tables and the same schema versions as SqliteStore, in
// PostgreSQL's dialect, with three differences that come from several
// writers:
// - the prediction log is not appended in time order (replicas interleave),
//   so it keeps a time index and scans page through (time_ms, row_id);
// - incremental joins cannot follow an increasing row number, since rows
//   numbered earlier may commit later: every prediction and feedback row
//   carries the id of the transaction that wrote it (txid), and a cursor is
//   a snapshot's xmin, below which every transaction has ended. Reading
//   "txid >= the last xmin" sees every change since, some twice (which
//   JoinedSince allows);
// - schema migrations take an advisory lock, so replicas that start together
//   migrate once.
//
// Connections come from a small pool (a statement holds one); the prediction
// log writes in multi-row INSERTs inside one transaction, feedback commits
// before WriteFeedback returns (synchronous_commit as the server has it, on
// by default). Text PostgreSQL cannot hold (NUL bytes, invalid UTF-8) is
// stored with U+FFFD in their place, the same on every path, so an id still
// finds its prediction.
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "core/logging.h"
#include "core/periodic_thread.h"
#include "core/thread_annotations.h"
#include "core/utf8.h"
#include "store/store.h"

namespace vigil {
namespace {

// Migration N brings the schema from version N-1 to N, as SQLite's does
// (the versions match; see sqlite_store.cc for why each exists). Never edit
// one that shipped; add the next to both lists.
const char* const kMigrations[] = {
    // 1
    "CREATE TABLE deployments ("
    "  endpoint TEXT PRIMARY KEY,"
    "  spec_yaml TEXT NOT NULL,"
    "  source_text TEXT NOT NULL,"
    "  updated_ms BIGINT NOT NULL);"
    "CREATE TABLE audit_events ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  time_ms BIGINT NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  before_spec TEXT NOT NULL,"
    "  after_spec TEXT NOT NULL);"
    "CREATE INDEX audit_events_by_endpoint ON audit_events (endpoint, id);",
    // 2: row_id is a prediction's identity (no index: nothing looks it up);
    // txid is the writing transaction (see the top of this file).
    "CREATE TABLE predictions ("
    "  row_id BIGSERIAL,"
    "  txid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),"
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
    "CREATE INDEX predictions_by_id_hash ON predictions (id_hash);"
    "CREATE INDEX predictions_by_time ON predictions (time_ms, row_id);"
    "CREATE INDEX predictions_by_txid ON predictions (txid);"
    "CREATE TABLE feedback ("
    "  prediction_id TEXT PRIMARY KEY,"
    "  time_ms BIGINT NOT NULL,"
    "  label DOUBLE PRECISION,"
    "  reward DOUBLE PRECISION);",
    // 3: no PostgreSQL store existed before version 10, so there is nothing
    // to re-key.
    "ALTER TABLE predictions RENAME COLUMN id_hash TO id_key;"
    "DROP INDEX predictions_by_id_hash;"
    "CREATE INDEX predictions_by_id_key ON predictions (id_key);",
    // 4: unlike SQLite's, the time index stays (rows are not in time order).
    "ALTER TABLE feedback ADD COLUMN id_key BIGINT NOT NULL DEFAULT 0;"
    "CREATE INDEX feedback_by_time ON feedback (time_ms);",
    // 5
    "CREATE TABLE drift_windows ("
    "  id BIGSERIAL PRIMARY KEY,"
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
    // 6
    "CREATE TABLE alert_events ("
    "  id BIGSERIAL PRIMARY KEY,"
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
    // 7: SQLite's feedback seq; here the writing transaction, as predictions have.
    "ALTER TABLE feedback ADD COLUMN txid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);"
    "CREATE INDEX feedback_by_txid ON feedback (txid);",
    // 8
    "CREATE TABLE rollouts ("
    "  endpoint TEXT PRIMARY KEY,"
    "  state TEXT NOT NULL,"
    "  updated_ms BIGINT NOT NULL);"
    "CREATE TABLE rollout_analyses ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  time_ms BIGINT NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  candidate TEXT NOT NULL,"
    "  step BIGINT NOT NULL,"
    "  verdict TEXT NOT NULL,"
    "  evidence TEXT NOT NULL);"
    "CREATE INDEX rollout_analyses_by_endpoint ON rollout_analyses (endpoint, id);",
    // 9
    "CREATE TABLE benchmarks ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  time_ms BIGINT NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  trigger_text TEXT NOT NULL,"
    "  result TEXT NOT NULL);"
    "CREATE INDEX benchmarks_by_endpoint ON benchmarks (endpoint, id);",
    // 10
    "ALTER TABLE predictions ADD COLUMN rung INTEGER NOT NULL DEFAULT 0;",
    // 11
    "CREATE TABLE leader (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL);"
    "INSERT INTO leader (id, epoch) VALUES (1, 0);"
    "ALTER TABLE rollouts ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE rollout_analyses ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;",
    // 12
    "ALTER TABLE drift_windows ADD COLUMN replica TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE drift_windows ADD COLUMN counts TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE drift_windows ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;"
    "CREATE INDEX drift_windows_by_version ON drift_windows (model, version, replica, end_ms);"
    "CREATE TABLE frontend_counts ("
    "  replica TEXT NOT NULL,"
    "  endpoint TEXT NOT NULL,"
    "  variant TEXT NOT NULL,"
    "  since_ms BIGINT NOT NULL,"
    "  requests BIGINT NOT NULL,"
    "  errors BIGINT NOT NULL,"
    "  PRIMARY KEY (replica, endpoint, variant));",
};

// The advisory lock the leader holds ("vigil" + 2).
constexpr int64_t kLeaderLock = 0x76696769'6c000002;

// A decision of epoch $N is written only while $N is the leader's epoch (a
// person's, epoch 0, always): the leader row is share-locked, so a new
// leader's epoch cannot commit in between.
constexpr const char* kFenced = "($%d::bigint = 0 OR $%d::bigint = (SELECT epoch FROM leader WHERE id = 1 FOR SHARE))";

std::string Fence(int param) {
  char buf[160];
  std::snprintf(buf, sizeof buf, kFenced, param, param);
  return buf;
}

// The advisory lock replicas migrate under (an arbitrary constant: "vigil" + 1).
constexpr int64_t kMigrationLock = 0x76696769'6c000001;

// Rows per multi-row INSERT (13 parameters each, far below the 65,535 limit).
constexpr size_t kRowsPerInsert = 500;
// Rows per page of a scan.
constexpr int64_t kScanPage = 20'000;
// Connections a store opens at most; a statement waits for one beyond that.
constexpr size_t kMaxConnections = 8;

// Text PostgreSQL accepts: NUL bytes and invalid UTF-8 become U+FFFD.
std::string PgText(std::string_view s) {
  if (s.find('\0') == std::string_view::npos && IsValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (c != 0 && n > 0 && i + n <= s.size() && IsValidUtf8(s.substr(i, n))) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

std::string DoubleText(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

// Statement parameters, all sent as text (NULL where absent).
class Params {
 public:
  Params& Add(std::string_view s) {
    values_.push_back(PgText(s));
    null_.push_back(false);
    return *this;
  }
  Params& Add(const char* s) { return Add(std::string_view(s)); }
  Params& Add(int64_t v) {
    values_.push_back(std::to_string(v));
    null_.push_back(false);
    return *this;
  }
  Params& Add(int v) { return Add(static_cast<int64_t>(v)); }
  Params& Add(double v) {
    values_.push_back(DoubleText(v));
    null_.push_back(false);
    return *this;
  }
  Params& Add(const std::optional<double>& v) {
    if (v) return Add(*v);
    values_.emplace_back();
    null_.push_back(true);
    return *this;
  }
  size_t size() const { return values_.size(); }
  std::vector<const char*> Pointers() const {
    std::vector<const char*> p(values_.size());
    for (size_t i = 0; i < values_.size(); ++i) p[i] = null_[i] ? nullptr : values_[i].c_str();
    return p;
  }

 private:
  std::vector<std::string> values_;
  std::vector<bool> null_;
};

// A statement's result, freed with it.
class Result {
 public:
  explicit Result(PGresult* r) : r_(r, PQclear) {}
  ExecStatusType status() const { return PQresultStatus(r_.get()); }
  std::string error() const { return PQresultErrorMessage(r_.get()); }
  int rows() const { return PQntuples(r_.get()); }
  bool IsNull(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string Text(int row, int col) const {
    return std::string(PQgetvalue(r_.get(), row, col), static_cast<size_t>(PQgetlength(r_.get(), row, col)));
  }
  int64_t Int(int row, int col) const { return std::strtoll(PQgetvalue(r_.get(), row, col), nullptr, 10); }
  std::optional<double> Double(int row, int col) const {
    if (IsNull(row, col)) return std::nullopt;
    return std::strtod(PQgetvalue(r_.get(), row, col), nullptr);
  }
  // Rows a DELETE or UPDATE touched.
  int64_t Affected() const { return std::strtoll(PQcmdTuples(r_.get()), nullptr, 10); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_;
};

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// One connection, lent by the pool to one caller at a time.
class Connection {
 public:
  explicit Connection(PGconn* c) : c_(c) {}
  ~Connection() { PQfinish(c_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool healthy() const { return PQstatus(c_) == CONNECTION_OK; }

  StatusOr<Result> Exec(const std::string& sql, const Params& params = Params()) {
    const auto p = params.Pointers();
    // Without parameters, PQexec: it may run several commands (migrations).
    Result r(p.empty()
                 ? PQexec(c_, sql.c_str())
                 : PQexecParams(c_, sql.c_str(), static_cast<int>(p.size()), nullptr, p.data(), nullptr, nullptr, 0));
    if (r.status() != PGRES_COMMAND_OK && r.status() != PGRES_TUPLES_OK) {
      const std::string message = Trimmed(r.error().empty() ? PQerrorMessage(c_) : r.error());
      return Unavailable("PostgreSQL: " + message);
    }
    return r;
  }
  Status Run(const std::string& sql, const Params& params = Params()) { return Exec(sql, params).status(); }

  // Runs `body` in a transaction; rolls back when it fails.
  Status Transaction(const std::function<Status()>& body) {
    VIGIL_RETURN_IF_ERROR(Run("BEGIN"));
    Status s = body();
    if (s.ok()) s = Run("COMMIT");
    if (!s.ok() && healthy()) (void)Run("ROLLBACK");
    return s;
  }

 private:
  PGconn* c_;
};

// Opens a connection to `url`: at most 10 s to connect, named in
// pg_stat_activity.
StatusOr<std::unique_ptr<Connection>> Connect(const std::string& url) {
  const char* keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
  const char* values[] = {url.c_str(), "10", "vigil", nullptr};
  PGconn* c = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (c == nullptr) return Unavailable("PostgreSQL: out of memory opening a connection");
  auto conn = std::make_unique<Connection>(c);
  if (!conn->healthy()) return Unavailable("cannot connect to the store: " + Trimmed(PQerrorMessage(c)));
  // Quiet NOTICEs (CREATE ... IF NOT EXISTS) instead of libpq printing them to stderr.
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  return conn;
}

// The store's connections: opened when needed, up to kMaxConnections, a
// broken one closed when it comes back.
class Pool {
 public:
  explicit Pool(std::string url) : url_(std::move(url)) {}

  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Connection> c) : pool_(pool), c_(std::move(c)) {}
    ~Lease() {
      if (c_) pool_->Return(std::move(c_));
    }
    Lease(Lease&&) = default;
    Connection* operator->() { return c_.get(); }
    Connection& operator*() { return *c_; }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> c_;
  };

  StatusOr<Lease> Acquire() {
    {
      MutexLock lock(mu_);
      while (idle_.empty() && open_ >= kMaxConnections) cv_.Wait(lock);
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(c));
      }
      ++open_;  // reserved; connecting happens outside the lock
    }
    auto c = Connect(url_);
    if (!c.ok()) {
      MutexLock lock(mu_);
      --open_;
      cv_.NotifyOne();
      return c.status();
    }
    return Lease(this, std::move(*c));
  }

 private:
  void Return(std::unique_ptr<Connection> c) {
    MutexLock lock(mu_);
    if (c->healthy()) {
      idle_.push_back(std::move(c));
    } else {
      --open_;  // a lost connection is closed; the next Acquire opens another
    }
    cv_.NotifyOne();
  }

  const std::string url_;
  Mutex mu_;
  CondVar cv_;
  std::vector<std::unique_ptr<Connection>> idle_ GUARDED_BY(mu_);
  size_t open_ GUARDED_BY(mu_) = 0;
};

#define VIGIL_LEASE(name)                         \
  auto name##_or = pool_.Acquire();               \
  if (!name##_or.ok()) return name##_or.status(); \
  Pool::Lease& name = *name##_or

// "$n, $n+1, ..., $n+count-1" in parentheses.
std::string Placeholders(size_t first, size_t count) {
  std::string s = "(";
  for (size_t i = 0; i < count; ++i) {
    if (i) s += ", ";
    s += "$" + std::to_string(first + i);
  }
  return s + ")";
}

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(std::string url) : pool_(std::move(url)) {}

  Status Migrate() {
    VIGIL_LEASE(c);
    VIGIL_RETURN_IF_ERROR(c->Run("SELECT pg_advisory_lock($1)", Params().Add(kMigrationLock)));
    Status s = MigrateLocked(*c);
    (void)c->Run("SELECT pg_advisory_unlock($1)", Params().Add(kMigrationLock));
    return s;
  }

  Status SaveDeployment(const StoredDeployment& d) override {
    return Run(
        "INSERT INTO deployments (endpoint, spec_yaml, source_text, updated_ms) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (endpoint) DO UPDATE SET spec_yaml = excluded.spec_yaml, "
        "source_text = excluded.source_text, updated_ms = excluded.updated_ms",
        Params().Add(d.endpoint).Add(d.spec_yaml).Add(d.source_text).Add(d.updated_ms));
  }

  StatusOr<bool> SaveDeploymentIf(const StoredDeployment& d, const std::string& expected_yaml) override {
    VIGIL_ASSIGN_OR_RETURN(
        Result r,
        Query("UPDATE deployments SET spec_yaml = $2, source_text = $3, updated_ms = $4 WHERE endpoint = $1 "
              "AND spec_yaml = $5",
              Params().Add(d.endpoint).Add(d.spec_yaml).Add(d.source_text).Add(d.updated_ms).Add(expected_yaml)));
    return r.Affected() == 1;
  }

  Status SaveFrontendCounts(const std::vector<FrontendCount>& counts) override {
    // Multi-row upserts of up to 1,000 rows (a row per replica, endpoint and variant).
    constexpr size_t kRows = 1000;
    for (size_t first = 0; first < counts.size(); first += kRows) {
      std::string sql = "INSERT INTO frontend_counts (replica, endpoint, variant, since_ms, requests, errors) VALUES ";
      Params params;
      int n = 0;
      for (size_t i = first; i < std::min(counts.size(), first + kRows); ++i) {
        const FrontendCount& c = counts[i];
        sql += n ? ", (" : "(";
        for (const char* cast : {"", "", "", "::bigint", "::bigint", "::bigint"}) {
          sql += (n % 6 ? ", $" : "$") + std::to_string(n + 1) + cast;  // six parameters per row
          ++n;
        }
        sql += ")";
        params.Add(c.replica).Add(c.endpoint).Add(c.variant).Add(c.since_ms).Add(c.requests).Add(c.errors);
      }
      sql +=
          " ON CONFLICT (replica, endpoint, variant) DO UPDATE SET since_ms = excluded.since_ms, requests = "
          "excluded.requests, errors = excluded.errors";
      VIGIL_RETURN_IF_ERROR(Run(sql, params));
    }
    return Status::Ok();
  }

  StatusOr<std::vector<FrontendCount>> LoadFrontendCounts() override {
    VIGIL_ASSIGN_OR_RETURN(Result r,
                           Query("SELECT replica, endpoint, variant, since_ms, requests, errors FROM frontend_counts"));
    std::vector<FrontendCount> out;
    for (int i = 0; i < r.rows(); ++i) {
      out.push_back({r.Text(i, 0), r.Text(i, 1), r.Text(i, 2), r.Int(i, 3), r.Int(i, 4), r.Int(i, 5)});
    }
    return out;
  }

  Status DeleteDeployment(const std::string& endpoint) override {
    return Run("DELETE FROM deployments WHERE endpoint = $1", Params().Add(endpoint));
  }

  StatusOr<std::vector<StoredDeployment>> LoadDeployments() override {
    VIGIL_ASSIGN_OR_RETURN(
        Result r, Query("SELECT endpoint, spec_yaml, source_text, updated_ms FROM deployments ORDER BY endpoint"));
    std::vector<StoredDeployment> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back({r.Text(i, 0), r.Text(i, 1), r.Text(i, 2), r.Int(i, 3)});
    return out;
  }

  Status AppendAudit(const AuditEvent& e) override {
    return Run(
        "INSERT INTO audit_events (time_ms, endpoint, actor, action, detail, before_spec, after_spec) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        Params().Add(e.time_ms).Add(e.endpoint).Add(e.actor).Add(e.action).Add(e.detail).Add(e.before).Add(e.after));
  }

  StatusOr<std::vector<AuditEvent>> History(const std::string& endpoint, int limit) override {
    VIGIL_ASSIGN_OR_RETURN(Result r, Query("SELECT id, time_ms, endpoint, actor, action, detail, before_spec, "
                                           "after_spec FROM audit_events WHERE endpoint = $1 ORDER BY id DESC LIMIT $2",
                                           Params().Add(endpoint).Add(limit)));
    std::vector<AuditEvent> out;
    for (int i = 0; i < r.rows(); ++i) {
      out.push_back({r.Int(i, 0), r.Int(i, 1), r.Text(i, 2), r.Text(i, 3), r.Text(i, 4), r.Text(i, 5), r.Text(i, 6),
                     r.Text(i, 7)});
    }
    return out;
  }

  Status WritePredictions(const std::vector<PredictionRecord>& records) override {
    if (records.empty()) return Status::Ok();
    VIGIL_LEASE(c);
    return c->Transaction([&]() -> Status {
      for (size_t begin = 0; begin < records.size(); begin += kRowsPerInsert) {
        const size_t end = std::min(records.size(), begin + kRowsPerInsert);
        std::string sql =
            "INSERT INTO predictions (id, variant, time_ms, endpoint, model, version, latency_us, shadow, outputs, "
            "inputs, key_hash, id_key, rung) VALUES ";
        Params params;
        for (size_t i = begin; i < end; ++i) {
          const auto& r = records[i];
          if (i > begin) sql += ", ";
          sql += Placeholders(params.size() + 1, 13);
          params.Add(r.id)
              .Add(r.variant)
              .Add(r.time_ms)
              .Add(r.endpoint)
              .Add(r.model)
              .Add(r.version)
              .Add(r.latency_us)
              .Add(static_cast<int64_t>(r.shadow))
              .Add(r.outputs)
              .Add(r.inputs)
              .Add(r.key_hash)
              .Add(KeyOf(r.id))
              .Add(static_cast<int64_t>(r.rung));
        }
        VIGIL_RETURN_IF_ERROR(c->Run(sql, params));
      }
      return Status::Ok();
    });
  }

  Status WriteFeedback(const std::vector<FeedbackRecord>& records) override {
    if (records.empty()) return Status::Ok();
    // One upsert may not touch a row twice: feedback for the same id in one
    // call merges first, as it would have row by row.
    std::vector<FeedbackRecord> merged;
    std::map<std::string, size_t> at;
    for (const auto& r : records) {
      const std::string id = PgText(r.prediction_id);
      auto [it, fresh] = at.try_emplace(id, merged.size());
      if (fresh) {
        merged.push_back(r);
        merged.back().prediction_id = id;
        continue;
      }
      FeedbackRecord& m = merged[it->second];
      m.time_ms = r.time_ms;
      if (r.label) m.label = r.label;
      if (r.reward) m.reward = r.reward;
    }
    VIGIL_LEASE(c);
    return c->Transaction([&]() -> Status {
      for (size_t begin = 0; begin < merged.size(); begin += kRowsPerInsert) {
        const size_t end = std::min(merged.size(), begin + kRowsPerInsert);
        std::string sql = "INSERT INTO feedback (prediction_id, time_ms, label, reward, id_key) VALUES ";
        Params params;
        for (size_t i = begin; i < end; ++i) {
          if (i > begin) sql += ", ";
          sql += Placeholders(params.size() + 1, 5);
          const auto& r = merged[i];
          params.Add(r.prediction_id).Add(r.time_ms).Add(r.label).Add(r.reward).Add(KeyOf(r.prediction_id));
        }
        sql +=
            " ON CONFLICT (prediction_id) DO UPDATE SET time_ms = excluded.time_ms, "
            "label = COALESCE(excluded.label, feedback.label), reward = COALESCE(excluded.reward, feedback.reward), "
            "txid = excluded.txid";
        VIGIL_RETURN_IF_ERROR(c->Run(sql, params));
      }
      return Status::Ok();
    });
  }

  StatusOr<std::vector<std::string>> KnownPredictions(const std::vector<std::string>& ids) override {
    std::vector<std::string> known;
    VIGIL_LEASE(c);
    for (size_t begin = 0; begin < ids.size(); begin += kRowsPerInsert) {
      const size_t end = std::min(ids.size(), begin + kRowsPerInsert);
      std::string sql = "SELECT v.n FROM (VALUES ";
      Params params;
      for (size_t i = begin; i < end; ++i) {
        if (i > begin) sql += ", ";
        sql += "($" + std::to_string(params.size() + 1) + "::bigint, $" + std::to_string(params.size() + 2) +
               "::text, $" + std::to_string(params.size() + 3) + "::bigint)";
        params.Add(KeyOf(ids[i])).Add(ids[i]).Add(static_cast<int64_t>(i));
      }
      sql += ") AS v (k, id, n) WHERE EXISTS (SELECT 1 FROM predictions p WHERE p.id_key = v.k AND p.id = v.id)";
      VIGIL_ASSIGN_OR_RETURN(Result r, c->Exec(sql, params));
      std::vector<int64_t> found;
      for (int i = 0; i < r.rows(); ++i) found.push_back(r.Int(i, 0));
      std::sort(found.begin(), found.end());  // in the order asked
      for (int64_t n : found) known.push_back(ids[static_cast<size_t>(n)]);
    }
    return known;
  }

  StatusOr<std::vector<JoinedPrediction>> Joined(const std::string& endpoint, int64_t since_ms) override {
    VIGIL_ASSIGN_OR_RETURN(
        Result r, Query("SELECT p.variant, p.outputs, f.label, f.reward, p.time_ms, f.time_ms, p.row_id FROM feedback "
                        "f JOIN predictions p ON p.id_key = f.id_key AND p.id = f.prediction_id WHERE p.endpoint = $1 "
                        "AND p.shadow = 0 AND p.rung = 0 AND p.time_ms >= $2 ORDER BY p.time_ms, p.row_id",
                        Params().Add(endpoint).Add(since_ms)));
    std::vector<JoinedPrediction> out;
    for (int i = 0; i < r.rows(); ++i) {
      out.push_back(
          {r.Text(i, 0), r.Text(i, 1), r.Double(i, 2), r.Double(i, 3), r.Int(i, 4), r.Int(i, 5), r.Int(i, 6)});
    }
    return out;
  }

  // Both positions are the oldest transaction still running (or the next
  // to start): everything written below it has committed or never will.
  StatusOr<JoinCursor> JoinCursorNow() override {
    VIGIL_ASSIGN_OR_RETURN(Result r, Query("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"));
    const int64_t xmin = r.Int(0, 0);
    return JoinCursor{xmin, xmin};
  }

  StatusOr<std::vector<JoinedChange>> JoinedSince(JoinCursor& cursor) override {
    VIGIL_ASSIGN_OR_RETURN(JoinCursor now, JoinCursorNow());
    constexpr const char* kColumns =
        "SELECT p.endpoint, p.variant, p.outputs, f.label, f.reward, p.time_ms, f.time_ms, p.row_id ";
    std::vector<JoinedChange> out;
    auto read = [&](const std::string& sql, int64_t since) -> Status {
      VIGIL_ASSIGN_OR_RETURN(Result r, Query(sql, Params().Add(since)));
      for (int i = 0; i < r.rows(); ++i) {
        out.push_back(
            {r.Text(i, 0),
             {r.Text(i, 1), r.Text(i, 2), r.Double(i, 3), r.Double(i, 4), r.Int(i, 5), r.Int(i, 6), r.Int(i, 7)}});
      }
      return Status::Ok();
    };
    // Feedback written or updated since, then predictions logged since whose
    // feedback came first.
    VIGIL_RETURN_IF_ERROR(read(std::string(kColumns) +
                                   "FROM feedback f JOIN predictions p ON p.id_key = f.id_key AND p.id = "
                                   "f.prediction_id WHERE f.txid >= $1 AND p.shadow = 0 AND p.rung = 0 ORDER BY f.txid",
                               cursor.feedback_seq));
    VIGIL_RETURN_IF_ERROR(read(std::string(kColumns) +
                                   "FROM predictions p JOIN feedback f ON f.prediction_id = p.id WHERE p.txid >= $1 "
                                   "AND p.shadow = 0 AND p.rung = 0 ORDER BY p.txid, p.row_id",
                               cursor.prediction_row));
    cursor = now;
    return out;
  }

  StatusOr<int64_t> ScanPredictions(const std::string& endpoint, int64_t from_ms, int64_t to_ms, int64_t limit,
                                    const PredictionVisitor& fn) override {
    return Scan({"p", "p.variant, p.outputs", "predictions p", "p.shadow = 0"}, endpoint, from_ms, to_ms, limit,
                [&](const Result& r, int i) { fn(r.Text(i, 2), r.Int(i, 0), r.Text(i, 3)); });
  }

  StatusOr<int64_t> ScanServed(const std::string& endpoint, int64_t from_ms, int64_t to_ms, int64_t limit,
                               const ServedVisitor& fn) override {
    return Scan({"p", kServedColumns, kServedFrom, "p.shadow = 0 AND p.rung = 0"}, endpoint, from_ms, to_ms, limit,
                [&](const Result& r, int i) { fn(Served(r, i, false)); });
  }

  StatusOr<int64_t> ScanSampledInputs(const std::string& endpoint, int64_t from_ms, int64_t to_ms, int64_t limit,
                                      const ServedVisitor& fn) override {
    return Scan({"p", std::string(kServedColumns) + ", p.inputs", kServedFrom,
                 "p.shadow = 0 AND p.rung = 0 AND p.inputs != ''"},
                endpoint, from_ms, to_ms, limit, [&](const Result& r, int i) { fn(Served(r, i, true)); });
  }

  StatusOr<int64_t> ScanShadowPairs(const std::string& endpoint, const std::string& variant, int64_t from_ms,
                                    int64_t to_ms, int64_t limit, const ShadowVisitor& fn) override {
    return Scan(
        {"s", "p.variant, p.outputs, s.outputs, p.latency_us, s.latency_us, f.label, f.reward",
         "predictions s JOIN predictions p ON p.id_key = s.id_key AND p.id = s.id AND p.shadow = 0 AND "
         "p.rung = 0 AND p.endpoint = s.endpoint LEFT JOIN feedback f ON f.prediction_id = s.id",
         "s.shadow = 1 AND s.variant = $7"},
        endpoint, from_ms, to_ms, limit,
        [&](const Result& r, int i) {
          fn({r.Int(i, 0), r.Text(i, 2), r.Text(i, 3), r.Text(i, 4), r.Int(i, 5), r.Int(i, 6), r.Double(i, 7),
              r.Double(i, 8)});
        },
        &variant);
  }

  StatusOr<int64_t> PrunePredictions(int64_t before_ms, int64_t max_rows) override {
    VIGIL_LEASE(c);
    VIGIL_ASSIGN_OR_RETURN(Result aged, c->Exec("DELETE FROM predictions WHERE time_ms < $1", Params().Add(before_ms)));
    int64_t removed = aged.Affected();
    if (max_rows > 0) {
      // Past max_rows, the oldest go: everything before the max_rows-th newest.
      VIGIL_ASSIGN_OR_RETURN(Result over,
                             c->Exec("DELETE FROM predictions WHERE (time_ms, row_id) < (SELECT time_ms, row_id FROM "
                                     "predictions ORDER BY time_ms DESC, row_id DESC LIMIT 1 OFFSET $1)",
                                     Params().Add(max_rows - 1)));
      removed += over.Affected();
    }
    VIGIL_RETURN_IF_ERROR(c->Run("DELETE FROM feedback WHERE time_ms < $1", Params().Add(before_ms)));
    return removed;
  }

  Status WriteDriftWindow(const StoredDriftWindow& w) override {
    // A merged window is the leader's decision: fenced by its epoch.
    VIGIL_ASSIGN_OR_RETURN(
        Result q, Query("INSERT INTO drift_windows (model, version, start_ms, end_ms, rows, reference_rows, "
                        "reference_source, drifted_share, dataset_drift, columns, replica, counts, epoch) SELECT $1, "
                        "$2::bigint, $3::bigint, $4::bigint, $5::bigint, $6::bigint, $7, $8::double precision, "
                        "$9::bigint, $10, $11, $12, $13::bigint WHERE $11 <> '' OR " +
                            Fence(13),
                        Params()
                            .Add(w.model)
                            .Add(w.version)
                            .Add(w.start_ms)
                            .Add(w.end_ms)
                            .Add(w.rows)
                            .Add(w.reference_rows)
                            .Add(w.reference_source)
                            .Add(w.drifted_share)
                            .Add(static_cast<int64_t>(w.dataset_drift))
                            .Add(w.columns)
                            .Add(w.replica)
                            .Add(w.counts)
                            .Add(w.epoch)));
    return q.Affected() == 1 ? Status::Ok() : Fenced(w.epoch);
  }

  StatusOr<std::vector<StoredDriftWindow>> DriftWindows(const std::string& model, int64_t from_ms, int64_t to_ms,
                                                        int limit) override {
    return ReadDriftWindows(
        Query("SELECT " + std::string(kDriftWindowColumns) +
                  " FROM (SELECT * FROM drift_windows WHERE model = $1 AND replica = '' AND end_ms >= $2 AND end_ms "
                  "<= $3 ORDER BY end_ms DESC, id DESC LIMIT $4) AS newest ORDER BY end_ms, id",
              Params().Add(model).Add(from_ms).Add(to_ms).Add(limit)));
  }

  StatusOr<std::vector<StoredDriftWindow>> ReplicaDriftWindows(const std::string& model, int64_t version,
                                                               int64_t after_ms, int64_t to_ms, int limit) override {
    return ReadDriftWindows(
        Query("SELECT " + std::string(kDriftWindowColumns) +
                  " FROM drift_windows WHERE model = $1 AND version = $2 AND replica <> '' AND end_ms > $3 AND end_ms "
                  "<= $4 ORDER BY end_ms, id LIMIT $5",
              Params().Add(model).Add(version).Add(after_ms).Add(to_ms).Add(limit)));
  }

  StatusOr<int64_t> LastDriftWindowEnd(const std::string& model, int64_t version) override {
    VIGIL_ASSIGN_OR_RETURN(Result r, Query("SELECT COALESCE(MAX(end_ms), 0) FROM drift_windows WHERE model = $1 AND "
                                           "version = $2 AND replica = ''",
                                           Params().Add(model).Add(version)));
    return r.Int(0, 0);
  }

  StatusOr<int64_t> PruneDriftWindows(int64_t before_ms) override {
    VIGIL_ASSIGN_OR_RETURN(Result r, Query("DELETE FROM drift_windows WHERE end_ms < $1", Params().Add(before_ms)));
    return r.Affected();
  }

  Status AppendAlertEvent(const AlertEvent& e) override {
    return Run(
        "INSERT INTO alert_events (time_ms, alertname, fingerprint, labels, state, statistic, value, threshold, "
        "window_start_ms, window_end_ms, summary) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        Params()
            .Add(e.time_ms)
            .Add(e.alertname)
            .Add(e.fingerprint)
            .Add(e.labels)
            .Add(e.state)
            .Add(e.statistic)
            .Add(e.value)
            .Add(e.threshold)
            .Add(e.window_start_ms)
            .Add(e.window_end_ms)
            .Add(e.summary));
  }

  StatusOr<std::vector<AlertEvent>> AlertEvents(int limit) override {
    VIGIL_ASSIGN_OR_RETURN(Result r, Query("SELECT id, time_ms, alertname, fingerprint, labels, state, statistic, "
                                           "value, threshold, window_start_ms, window_end_ms, summary FROM "
                                           "alert_events ORDER BY id DESC LIMIT $1",
                                           Params().Add(limit)));
    std::vector<AlertEvent> out;
    for (int i = 0; i < r.rows(); ++i) {
      out.push_back({r.Int(i, 0), r.Int(i, 1), r.Text(i, 2), r.Text(i, 3), r.Text(i, 4), r.Text(i, 5), r.Text(i, 6),
                     r.Double(i, 7).value_or(0), r.Double(i, 8).value_or(0), r.Int(i, 9), r.Int(i, 10), r.Text(i, 11)});
    }
    return out;
  }

  Status SaveRollout(const StoredRollout& r) override {
    VIGIL_ASSIGN_OR_RETURN(Result q,
                           Query("INSERT INTO rollouts (endpoint, state, updated_ms, epoch) SELECT $1, $2, $3::bigint, "
                                 "$4::bigint WHERE " +
                                     Fence(4) +
                                     " ON CONFLICT (endpoint) DO UPDATE SET state = excluded.state, updated_ms = "
                                     "excluded.updated_ms, epoch = excluded.epoch",
                                 Params().Add(r.endpoint).Add(r.state).Add(r.updated_ms).Add(r.epoch)));
    return q.Affected() == 1 ? Status::Ok() : Fenced(r.epoch);
  }

  Status SaveRolloutIf(const StoredRollout& r, const std::string& expected_state) override {
    // The row as the writer saw it (or none), and the writer's epoch still the leader's.
    const std::string sql =
        expected_state.empty()
            ? "INSERT INTO rollouts (endpoint, state, updated_ms, epoch) SELECT $1, $2, $3::bigint, $4::bigint WHERE " +
                  Fence(4) + " AND $5 = '' ON CONFLICT (endpoint) DO NOTHING"
            : "UPDATE rollouts SET state = $2, updated_ms = $3::bigint, epoch = $4::bigint WHERE endpoint = $1 AND "
              "state = $5 AND " +
                  Fence(4);
    VIGIL_ASSIGN_OR_RETURN(
        Result q, Query(sql, Params().Add(r.endpoint).Add(r.state).Add(r.updated_ms).Add(r.epoch).Add(expected_state)));
    if (q.Affected() == 1) return Status::Ok();
    VIGIL_ASSIGN_OR_RETURN(Result fence, Query("SELECT " + Fence(1), Params().Add(r.epoch)));
    if (fence.Text(0, 0) != "t") return Fenced(r.epoch);
    return Aborted("the rollout state of '" + r.endpoint + "' was changed meanwhile (by another replica)");
  }

  Status DeleteRollout(const std::string& endpoint) override {
    return Run("DELETE FROM rollouts WHERE endpoint = $1", Params().Add(endpoint));
  }

  StatusOr<std::vector<StoredRollout>> LoadRollouts() override {
    VIGIL_ASSIGN_OR_RETURN(Result r,
                           Query("SELECT endpoint, state, updated_ms, epoch FROM rollouts ORDER BY endpoint"));
    std::vector<StoredRollout> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back({r.Text(i, 0), r.Text(i, 1), r.Int(i, 2), r.Int(i, 3)});
    return out;
  }

  Status AppendRolloutAnalysis(const StoredRolloutAnalysis& a) override {
    VIGIL_ASSIGN_OR_RETURN(
        Result q,
        Query("INSERT INTO rollout_analyses (time_ms, endpoint, candidate, step, verdict, evidence, epoch) SELECT "
              "$1::bigint, $2, $3, $4::bigint, $5, $6, $7::bigint WHERE " +
                  Fence(7),
              Params()
                  .Add(a.time_ms)
                  .Add(a.endpoint)
                  .Add(a.candidate)
                  .Add(a.step)
                  .Add(a.verdict)
                  .Add(a.evidence)
                  .Add(a.epoch)));
    if (q.Affected() != 1) return Fenced(a.epoch);
    // The newest kMaxRolloutAnalyses per endpoint are kept; trimmed every 100th write.
    if (analyses_written_.fetch_add(1, std::memory_order_relaxed) % 100 != 99) return Status::Ok();
    return Run(
        "DELETE FROM rollout_analyses WHERE endpoint = $1 AND id <= (SELECT id FROM rollout_analyses "
        "WHERE endpoint = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        Params().Add(a.endpoint).Add(kMaxRolloutAnalyses));
  }

  StatusOr<std::vector<StoredRolloutAnalysis>> RolloutAnalyses(const std::string& endpoint, int limit) override {
    VIGIL_ASSIGN_OR_RETURN(Result r, Query("SELECT id, time_ms, endpoint, candidate, step, verdict, evidence, epoch "
                                           "FROM rollout_analyses WHERE endpoint = $1 ORDER BY id DESC LIMIT $2",
                                           Params().Add(endpoint).Add(limit)));
    std::vector<StoredRolloutAnalysis> out;
    for (int i = 0; i < r.rows(); ++i) {
      out.push_back(
          {r.Int(i, 0), r.Int(i, 1), r.Text(i, 2), r.Text(i, 3), r.Int(i, 4), r.Text(i, 5), r.Text(i, 6), r.Int(i, 7)});
    }
    return out;
  }

  Status AppendBenchmark(const StoredBenchmark& b) override {
    VIGIL_RETURN_IF_ERROR(
        Run("INSERT INTO benchmarks (time_ms, endpoint, trigger_text, result) VALUES ($1, $2, $3, $4)",
            Params().Add(b.time_ms).Add(b.endpoint).Add(b.trigger).Add(b.result)));
    return Run(
        "DELETE FROM benchmarks WHERE endpoint = $1 AND id <= (SELECT id FROM benchmarks WHERE endpoint = $1 "
        "ORDER BY id DESC LIMIT 1 OFFSET $2)",
        Params().Add(b.endpoint).Add(kMaxBenchmarks));
  }

  StatusOr<std::vector<StoredBenchmark>> Benchmarks(const std::string& endpoint, int limit) override {
    VIGIL_ASSIGN_OR_RETURN(Result r, Query("SELECT id, time_ms, endpoint, trigger_text, result FROM benchmarks WHERE "
                                           "endpoint = $1 ORDER BY id DESC LIMIT $2",
                                           Params().Add(endpoint).Add(limit)));
    std::vector<StoredBenchmark> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.Int(i, 0), r.Int(i, 1), r.Text(i, 2), r.Text(i, 3), r.Text(i, 4)});
    return out;
  }

 private:
  // The served scans' columns after time_ms and row_id, and their tables.
  static constexpr const char* kServedColumns =
      "p.variant, p.latency_us, p.key_hash, p.outputs, f.label, f.reward, COALESCE(f.time_ms, 0)";
  static constexpr const char* kServedFrom = "predictions p LEFT JOIN feedback f ON f.prediction_id = p.id";

  static ServedPrediction Served(const Result& r, int i, bool with_inputs) {
    return {r.Text(i, 2),   r.Int(i, 0),    r.Int(i, 3), r.Text(i, 4), r.Text(i, 5),
            r.Double(i, 6), r.Double(i, 7), r.Int(i, 8), r.Int(i, 1),  with_inputs ? r.Text(i, 9) : std::string()};
  }

  // A scan of one endpoint's rows of `alias` logged in [from_ms, to_ms),
  // oldest first, a page at a time: each result row starts with the
  // alias's time_ms and row_id, then `columns`.
  struct ScanQuery {
    std::string alias, columns, from, where;
  };
  template <typename Row>
  StatusOr<int64_t> Scan(const ScanQuery& q, const std::string& endpoint, int64_t from_ms, int64_t to_ms, int64_t limit,
                         const Row& row, const std::string* variant = nullptr) {
    const std::string& a = q.alias;
    const std::string sql = "SELECT " + a + ".time_ms, " + a + ".row_id, " + q.columns + " FROM " + q.from + " WHERE " +
                            a + ".endpoint = $1 AND " + a + ".time_ms >= $2 AND " + a + ".time_ms < $3 AND (" + a +
                            ".time_ms, " + a + ".row_id) > ($4, $5) AND " + q.where + " ORDER BY " + a + ".time_ms, " +
                            a + ".row_id LIMIT $6";
    int64_t after_time = std::numeric_limits<int64_t>::min(), after_row = std::numeric_limits<int64_t>::min();
    int64_t visited = 0;
    while (visited < limit) {
      const int64_t page = std::min(kScanPage, limit - visited);
      Params params;
      params.Add(endpoint).Add(from_ms).Add(to_ms).Add(after_time).Add(after_row).Add(page);
      if (variant) params.Add(*variant);
      VIGIL_ASSIGN_OR_RETURN(Result r, Query(sql, params));
      for (int i = 0; i < r.rows(); ++i) row(r, i);
      visited += r.rows();
      if (r.rows() < page) break;
      after_time = r.Int(r.rows() - 1, 0);
      after_row = r.Int(r.rows() - 1, 1);
    }
    return visited;
  }

  static int64_t KeyOf(const std::string& id) { return PredictionIdKey(PgText(id)); }

  // The columns StoredDriftWindow holds, in its order, and their rows.
  static constexpr const char* kDriftWindowColumns =
      "model, version, start_ms, end_ms, rows, reference_rows, reference_source, drifted_share, dataset_drift, "
      "columns, replica, counts, epoch";
  static StatusOr<std::vector<StoredDriftWindow>> ReadDriftWindows(StatusOr<Result> r) {
    if (!r.ok()) return r.status();
    std::vector<StoredDriftWindow> out;
    for (int i = 0; i < r->rows(); ++i) {
      out.push_back({r->Text(i, 0), r->Int(i, 1), r->Int(i, 2), r->Int(i, 3), r->Int(i, 4), r->Int(i, 5), r->Text(i, 6),
                     r->Double(i, 7).value_or(0), r->Int(i, 8) != 0, r->Text(i, 9), r->Text(i, 10), r->Text(i, 11),
                     r->Int(i, 12)});
    }
    return out;
  }

  static Status Fenced(int64_t epoch) {
    return FailedPrecondition("not written: epoch " + std::to_string(epoch) +
                              " no longer leads (another replica took over)");
  }

  StatusOr<Result> Query(const std::string& sql, const Params& params = Params()) {
    VIGIL_LEASE(c);
    return c->Exec(sql, params);
  }
  Status Run(const std::string& sql, const Params& params) { return Query(sql, params).status(); }

  Status MigrateLocked(Connection& c) {
    VIGIL_RETURN_IF_ERROR(c.Run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
    VIGIL_ASSIGN_OR_RETURN(Result r, c.Exec("SELECT version FROM schema_version"));
    const int64_t version = r.rows() > 0 ? r.Int(0, 0) : 0;
    const int64_t latest = static_cast<int64_t>(std::size(kMigrations));
    if (version > latest) {
      return FailedPrecondition("the database has schema version " + std::to_string(version) +
                                ", newer than this build's " + std::to_string(latest) + "; use a newer vigil");
    }
    for (int64_t v = version + 1; v <= latest; ++v) {
      Status s = c.Transaction([&]() -> Status {
        VIGIL_RETURN_IF_ERROR(c.Run(kMigrations[v - 1]));
        return c.Run(v == 1 ? "INSERT INTO schema_version (version) VALUES (1)"
                            : "UPDATE schema_version SET version = " + std::to_string(v));
      });
      if (!s.ok()) return s.WithContext("schema migration " + std::to_string(v));
      spdlog::info("event=store_migrated store=postgres version={}", v);
    }
    return Status::Ok();
  }

  Pool pool_;
  std::atomic<int64_t> analyses_written_{0};
};

#undef VIGIL_LEASE

class PgLeadership final : public Leadership {
 public:
  PgLeadership(std::string url, std::chrono::milliseconds lease, std::function<void(bool, int64_t)> on_change)
      : url_(std::move(url)), on_change_(std::move(on_change)) {
    Step();  // the first try before the server starts serving
    thread_ = std::make_unique<PeriodicThread>("vigil-leader", lease, [this] { Step(); });
  }
  // The thread stops first (it is the last member), then the connection
  // closes, and the lock with it.
  ~PgLeadership() override { thread_.reset(); }

  bool IsLeader() const override { return epoch_.load() > 0; }
  int64_t Epoch() const override { return epoch_.load(); }

 private:
  // One check: a leader confirms its session still holds the lock; a
  // follower tries to take it. Runs on one thread at a time.
  void Step() {
    if (!conn_ || !conn_->healthy()) {
      StepDown("the connection to the store was lost");
      auto c = Connect(url_);
      if (!c.ok()) {
        spdlog::warn("event=leader_check_failed error={}", LogValue(c.status().message()));
        return;
      }
      conn_ = std::move(*c);
    }
    if (IsLeader()) {
      auto held = conn_->Exec(
          "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND "
          "classid = ($1::bigint >> 32) AND objid = ($1::bigint & 4294967295)",
          Params().Add(kLeaderLock));
      if (!held.ok() || held->Int(0, 0) == 0) {
        StepDown(held.ok() ? std::string("the lock is no longer held") : held.status().message());
        conn_.reset();
      }
      return;
    }
    auto got = conn_->Exec("SELECT pg_try_advisory_lock($1::bigint)", Params().Add(kLeaderLock));
    if (!got.ok() || got->Text(0, 0) != "t") return;
    auto epoch = conn_->Exec("UPDATE leader SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch");
    if (!epoch.ok() || epoch->rows() != 1) {
      spdlog::error("event=leader_epoch_failed error={}",
                    LogValue(epoch.ok() ? std::string("no leader row") : epoch.status().message()));
      (void)conn_->Run("SELECT pg_advisory_unlock($1::bigint)", Params().Add(kLeaderLock));
      return;
    }
    epoch_.store(epoch->Int(0, 0));
    spdlog::warn("event=leader_elected epoch={}", epoch_.load());
    if (on_change_) on_change_(true, epoch_.load());
  }

  void StepDown(const std::string& why) {
    if (!IsLeader()) return;
    spdlog::warn("event=leader_stepped_down epoch={} reason={}", epoch_.load(), LogValue(why));
    epoch_.store(0);
    if (on_change_) on_change_(false, 0);
  }

  const std::string url_;
  const std::function<void(bool, int64_t)> on_change_;
  std::unique_ptr<Connection> conn_;  // used by the constructor, then by the leadership thread alone
  std::atomic<int64_t> epoch_{0};
  std::unique_ptr<PeriodicThread> thread_;  // last; started once the first Step is done
};

}  // namespace

StatusOr<std::unique_ptr<Leadership>> PostgresLeadership(const std::string& url, std::chrono::milliseconds lease,
                                                         std::function<void(bool leader, int64_t epoch)> on_change) {
  if (!IsPostgresUrl(url)) return InvalidArgument("leadership needs a postgres:// store");
  return std::unique_ptr<Leadership>(std::make_unique<PgLeadership>(url, lease, std::move(on_change)));
}

bool IsPostgresUrl(std::string_view where) {
  return where.rfind("postgres://", 0) == 0 || where.rfind("postgresql://", 0) == 0;
}

StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url) {
  if (!IsPostgresUrl(url)) return InvalidArgument("--store must be a postgres:// or postgresql:// URL");
  if (std::size(kMigrations) != static_cast<size_t>(CurrentSchemaVersion())) {
    return Internal("the PostgreSQL schema has " + std::to_string(std::size(kMigrations)) + " versions, SQLite's " +
                    std::to_string(CurrentSchemaVersion()));
  }
  auto store = std::make_unique<PostgresStore>(url);
  if (Status s = store->Migrate(); !s.ok()) return s.WithContext("opening the store " + RedactedUrl(url));
  return std::unique_ptr<Store>(std::move(store));
}

StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& where) {
  return IsPostgresUrl(where) ? OpenPostgresStore(where) : OpenSqliteStore(where);
}

std::string RedactedUrl(const std::string& url) {
  // postgres://user:password@host/... -> postgres://user:***@host/...
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t at = url.find('@', scheme + 3);
  if (at == std::string::npos) return url;
  const size_t colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

}  // namespace vigil
