// A PostgreSQL server for tests, and a fresh database on it per test.
//
// Under ctest the server is the one the `postgres` fixture started
// (scripts/test-postgres.sh; its URL in the file VIGIL_TEST_POSTGRES_URL_FILE
// names); VIGIL_TEST_POSTGRES_URL names any other. A test binary run by hand
// without either starts its own and stops it when it exits. Where Debian's
// postgresql package is missing, PostgresSkipReason() says so and the
// PostgreSQL tests skip.
#pragma once

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace vigil::test_support {

inline bool PostgresInstalled() {
  std::error_code ec;
  if (!std::filesystem::exists("/usr/lib/postgresql", ec)) return false;
  for (const auto& e : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    if (std::filesystem::exists(e.path() / "bin" / "pg_ctl")) return true;
  }
  return false;
}

// A server this process started, stopped when the process exits.
class OwnPostgres {
 public:
  explicit OwnPostgres(const std::string& script) {
    state_ = (std::filesystem::temp_directory_path() / ("vigil-own-postgres-" + std::to_string(::getpid()))).string();
    const std::string cmd = script + " start " + state_ + " --fast 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return;
    char buf[512];
    std::string out;
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    const int rc = ::pclose(p);
    if (rc == 0) {
      url_ = out.substr(0, out.find('\n'));
    } else {
      error_ = out;
    }
  }
  ~OwnPostgres() {
    const std::string cmd = script_ + " stop " + state_ + " >/dev/null 2>&1";
    if (!url_.empty()) (void)std::system(cmd.c_str());
  }
  const std::string& url() const { return url_; }
  const std::string& error() const { return error_; }

 private:
  std::string script_ = VIGIL_SOURCE_DIR "/scripts/test-postgres.sh";
  std::string state_, url_, error_;
};

// The server's URL (its `postgres` database, as the superuser `vigil`), or
// empty with `why` set.
inline std::string PostgresAdminUrl(std::string* why) {
  if (const char* url = std::getenv("VIGIL_TEST_POSTGRES_URL"); url && *url) return url;
  if (const char* file = std::getenv("VIGIL_TEST_POSTGRES_URL_FILE"); file && *file) {
    std::ifstream in(file);
    std::string url;
    if (std::getline(in, url) && !url.empty()) return url;
  }
  if (!PostgresInstalled()) {
    *why = "PostgreSQL is not installed (Debian package postgresql; scripts/install-deps.sh installs it)";
    return "";
  }
  static OwnPostgres own(VIGIL_SOURCE_DIR "/scripts/test-postgres.sh");
  if (own.url().empty()) *why = "could not start PostgreSQL: " + own.error();
  return own.url();
}

// `url` (postgres://user@host:port/db) with another database.
inline std::string WithDatabase(const std::string& url, const std::string& db) {
  const size_t slash = url.find('/', url.find("://") + 3);
  return (slash == std::string::npos ? url : url.substr(0, slash)) + "/" + db;
}

// Runs `sql` on `url`; returns the first column of each row, or an error
// message as the single element of `error`.
inline std::vector<std::string> PostgresQuery(const std::string& url, const std::string& sql,
                                              std::string* error = nullptr) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> c(PQconnectdb(url.c_str()), PQfinish);
  std::vector<std::string> rows;
  if (PQstatus(c.get()) != CONNECTION_OK) {
    if (error) *error = PQerrorMessage(c.get());
    return rows;
  }
  PQsetNoticeProcessor(
      c.get(), [](void*, const char*) {}, nullptr);
  std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(c.get(), sql.c_str()), PQclear);
  const auto st = PQresultStatus(r.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    if (error) *error = PQresultErrorMessage(r.get());
    return rows;
  }
  for (int i = 0; i < PQntuples(r.get()); ++i) rows.emplace_back(PQgetvalue(r.get(), i, 0));
  return rows;
}

// A fresh database, dropped when this goes: its URL, or empty with `why`.
class PostgresDatabase {
 public:
  PostgresDatabase() {
    admin_ = PostgresAdminUrl(&why_);
    if (admin_.empty()) return;
    static std::atomic<int> counter{0};
    name_ = "vigil_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    std::string error;
    PostgresQuery(admin_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    PostgresQuery(admin_, "CREATE DATABASE " + name_, &error);
    if (!error.empty()) {
      why_ = "CREATE DATABASE failed: " + error;
      name_.clear();
      return;
    }
    url_ = WithDatabase(admin_, name_);
  }
  ~PostgresDatabase() {
    if (!name_.empty()) PostgresQuery(admin_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  }
  PostgresDatabase(const PostgresDatabase&) = delete;
  PostgresDatabase& operator=(const PostgresDatabase&) = delete;

  const std::string& url() const { return url_; }
  const std::string& why() const { return why_; }

 private:
  std::string admin_, name_, url_, why_;
};

}  // namespace vigil::test_support
