#include "server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "core/eventually.h"

namespace vigil::testing {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

fs::path ScratchDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("vigil_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void CopyExampleRepository(const fs::path& dest, const std::vector<std::string>& models) {
  const fs::path src = fs::path(VIGIL_SOURCE_DIR) / "examples" / "repository";
  fs::create_directories(dest);
  for (const auto& e : fs::directory_iterator(src)) {
    const std::string name = e.path().filename().string();
    if (!models.empty() && std::find(models.begin(), models.end(), name) == models.end()) continue;
    fs::copy(e.path(), dest / name, fs::copy_options::recursive);
  }
}

std::string PromtoolCheck(const std::string& metrics) {
  static std::atomic<int> n{0};
  const fs::path file =
      fs::temp_directory_path() / ("vigil_metrics_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + ".txt");
  WriteFile(file, metrics);
  const std::string cmd = "promtool check metrics < " + file.string() + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return "cannot run promtool";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, pipe)) out += buf;
  const int rc = ::pclose(pipe);
  fs::remove(file);
  return rc == 0 ? "" : "promtool check metrics failed (" + std::to_string(rc) + "):\n" + out;
}

InferCall FeaturesCall(Shape shape, size_t bytes) {
  InferCall call;
  call.model = "breast_cancer_mlp";
  Tensor t;
  t.name = "features";
  t.datatype = DataType::kFp32;
  t.shape = std::move(shape);
  t.data.resize(bytes);
  call.inputs.push_back(std::move(t));
  return call;
}

std::string FeaturesBody(int rows, const std::string& extra) {
  std::string data;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < 30; ++c) {
      if (!data.empty()) data += ",";
      data += std::to_string(1.0 + 0.1 * c + 0.01 * r);
    }
  }
  return R"({"inputs":[{"name":"features","datatype":"FP32","shape":[)" + std::to_string(rows) + R"(,30],"data":[)" +
         data + "]}]" + extra + "}";
}

namespace {

// Joins the named network namespace (this thread only); false on failure.
bool EnterNetns(const std::string& name) {
  const int fd = ::open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::setns(fd, CLONE_NEWNET) == 0;
  ::close(fd);
  return ok;
}

// Starts `vigil <args>` with stdout and stderr sent to files (the same file
// when the paths are equal), as `spawn` says.
pid_t SpawnVigil(const std::vector<std::string>& args, const std::string& out_path, const std::string& err_path,
                 const Spawn& spawn = {}) {
  std::vector<std::string> argv_s = {VIGIL_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!spawn.netns.empty() && !EnterNetns(spawn.netns)) ::_exit(126);
    if (spawn.file_limit > 0) {
      const rlimit limit{static_cast<rlim_t>(spawn.file_limit), static_cast<rlim_t>(spawn.file_limit)};
      if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) ::_exit(125);
    }
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = err_path == out_path ? out : ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace

std::unique_ptr<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv) {
  static std::atomic<int> counter{0};
  auto p = std::unique_ptr<ChildProcess>(new ChildProcess());
  p->log_path_ = fs::temp_directory_path() /
                 ("vigil_test_child_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".log");
  const pid_t pid = ::fork();
  if (pid < 0) return nullptr;
  if (pid == 0) {
    const int out = ::open(p->log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, 1);
    ::dup2(out, 2);
    std::vector<std::string> args = argv;
    std::vector<char*> raw;
    for (auto& a : args) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv(raw[0], raw.data());
    ::_exit(127);
  }
  p->pid_ = pid;
  return p;
}

bool ChildProcess::running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (::waitpid(pid_, nullptr, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::error_code ec;
  fs::remove(log_path_, ec);
}

std::string ChildProcess::Log() const { return ReadFile(log_path_); }

uint16_t FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

CommandResult RunVigil(const std::vector<std::string>& args, double timeout_s) {
  static int counter = 0;
  const std::string base =
      (fs::temp_directory_path() / ("vigil_test_cmd_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)))
          .string();
  const std::string out_path = base + ".out", err_path = base + ".err";
  const pid_t pid = SpawnVigil(args, out_path, err_path);
  CommandResult r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  while (true) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "vigil did not finish within " << timeout_s << " s";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  fs::remove(out_path);
  fs::remove(err_path);
  return r;
}

TestNetns::TestNetns() {
  static std::atomic<int> counter{0};
  const int n = counter++;
  const int pid = static_cast<int>(::getpid());
  name_ = "vigil-test-" + std::to_string(pid) + "-" + std::to_string(n);
  veth_ = "vt" + std::to_string(pid % 100000) + "x" + std::to_string(n);  // interface names: 15 bytes at most
  // A /30 in 10.213.0.0/16 of this namespace's own.
  const int subnet = (pid * 7 + n) % 16384;
  const auto address = [&](int host) {
    const int a = subnet * 4 + host;
    return "10.213." + std::to_string(a / 256) + "." + std::to_string(a % 256);
  };
  host_address_ = address(1);
  inner_address_ = address(2);
  if (::geteuid() != 0) {
    error_ = "network namespaces need root";
    return;
  }
  const std::string peer = veth_ + "p";
  const std::vector<std::string> steps = {
      "ip netns add " + name_,
      "ip link add " + veth_ + " type veth peer name " + peer,
      "ip link set " + peer + " netns " + name_,
      "ip addr add " + host_address_ + "/30 dev " + veth_,
      "ip link set " + veth_ + " up",
      "ip netns exec " + name_ + " ip addr add " + inner_address_ + "/30 dev " + peer,
      "ip netns exec " + name_ + " ip link set " + peer + " up",
      "ip netns exec " + name_ + " ip link set lo up",
  };
  for (const auto& step : steps) {
    if (std::system((step + " > /dev/null 2>&1").c_str()) != 0) {
      error_ = "cannot set up a network namespace ('" + step + "' failed)";
      return;
    }
  }
}

TestNetns::~TestNetns() {
  (void)std::system(("ip link del " + veth_ + " > /dev/null 2>&1").c_str());
  (void)std::system(("ip netns del " + name_ + " > /dev/null 2>&1").c_str());
}

void TestNetns::RunInside(const std::function<void()>& fn) const {
  std::thread t([&] {
    if (!EnterNetns(name_)) {
      ADD_FAILURE() << "cannot enter network namespace " << name_;
      return;
    }
    fn();
  });
  t.join();
}

std::unique_ptr<ServerProcess> ServerProcess::Start(const std::vector<std::string>& args, const Spawn& spawn) {
  auto p = std::unique_ptr<ServerProcess>(new ServerProcess());
  static int counter = 0;
  p->log_path_ = fs::temp_directory_path() /
                 ("vigil_test_server_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".log");
  std::vector<std::string> argv_s = {"serve", "--http-port", "0"};
  if (std::find(args.begin(), args.end(), "--host") == args.end()) argv_s.insert(argv_s.end(), {"--host", "127.0.0.1"});
  if (std::find(args.begin(), args.end(), "--data-dir") == args.end() &&
      std::find(args.begin(), args.end(), "--store") == args.end()) {
    // A store of its own, so tests never see each other's deployments.
    p->data_dir_ =
        fs::temp_directory_path() / ("vigil_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter));
    fs::remove_all(p->data_dir_);
    argv_s.insert(argv_s.end(), {"--data-dir", p->data_dir_.string()});
  }
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  p->pid_ = SpawnVigil(argv_s, p->log_path_.string(), p->log_path_.string(), spawn);
  EXPECT_TRUE(p->WaitForLog("event=server_ready", 60)) << p->Log();
  const std::string log = p->Log();
  std::smatch m;
  if (std::regex_search(log, m, std::regex("event=listening protocol=http host=\\S+ port=(\\d+)"))) {
    p->port_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  EXPECT_NE(p->port_, 0) << log;
  if (std::regex_search(log, m, std::regex("event=listening protocol=grpc host=\\S+ port=(\\d+)"))) {
    p->grpc_port_ = static_cast<uint16_t>(std::stoi(m[1]));
  }
  return p;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  std::error_code ec;
  fs::remove(log_path_, ec);
  if (!data_dir_.empty()) fs::remove_all(data_dir_, ec);
}

std::unique_ptr<HttpClient> ServerProcess::Client() const {
  HttpClient::Options o;
  o.port = port_;
  auto c = HttpClient::Connect(o);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.ok() ? std::move(c).value() : nullptr;
}

int ServerProcess::Signal(int sig, double timeout_s) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, sig);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (code != 0 && sig != SIGKILL) {
        // A crash (a sanitizer's report ends in SIGABRT) is told where the
        // test's output shows it: the log's tail holds the report.
        const std::string log = Log();
        std::fprintf(stderr, "vigil serve ended with %d; the end of its log:\n%s\n", code,
                     log.substr(log.size() > 12000 ? log.size() - 12000 : 0).c_str());
      }
      return code;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

std::string ServerProcess::Log() const { return ReadFile(log_path_); }

bool ServerProcess::WaitForLog(const std::string& needle, double timeout_s) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Log().find(needle) != std::string::npos) return true;
    siginfo_t info{};
    // Peek (WNOWAIT): a server that died will not log any more.
    if (pid_ > 0 && ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid_) {
      return Log().find(needle) != std::string::npos;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

double MetricSum(HttpClient& client, const std::string& prefix) {
  auto r = client.Get("/metrics");
  if (!r.ok() || r->status != 200) return -1;
  double sum = 0;
  std::istringstream lines(r->body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    const size_t space = line.rfind(' ');
    if (space != std::string::npos) sum += std::stod(line.substr(space + 1));
  }
  return sum;
}

bool ServerProcess::WaitForPolls(int n, double timeout_s) const {
  auto client = Client();
  auto polls = [&] { return client ? MetricSum(*client, "vigil_repository_polls_total ") : -1; };
  const double start = polls();
  return start >= 0 && Eventually([&] { return polls() >= start + n; },
                                  std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
}

rapidjson::Document ParseBody(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str());
  return d;
}

std::vector<std::vector<double>> ReferenceRows(std::vector<int>* labels, const fs::path& csv) {
  std::istringstream in(ReadFile(csv.empty() ? fs::path(VIGIL_SOURCE_DIR) / "examples" / "repository" /
                                                   "breast_cancer_mlp" / "reference.csv"
                                             : csv));
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::istringstream cells(line);
    std::string cell;
    while (row.size() < 30 && std::getline(cells, cell, ',')) row.push_back(std::stod(cell));
    if (row.size() != 30) continue;
    rows.push_back(row);
    if (labels && std::getline(cells, cell, ',')) labels->push_back(std::stoi(cell));
  }
  return rows;
}

}  // namespace vigil::testing
