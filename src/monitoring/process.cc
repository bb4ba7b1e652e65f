#include "monitoring/process.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

namespace vigil {

uint64_t ProcessResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

ProcessStats ReadProcessStats() {
  ProcessStats s;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (FILE* f = std::fopen("/proc/self/stat", "r")) {
    // Fields after the command (which may hold spaces, so read from its closing parenthesis).
    char buf[1024];
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    const char* p = std::strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0, starttime = 0, vsize = 0, rss = 0;
    if (p && std::sscanf(p + 2,
                         "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu "
                         "%llu %llu",
                         &utime, &stime, &starttime, &vsize, &rss) == 5) {
      s.cpu_seconds = static_cast<double>(utime + stime) / ticks;
      s.virtual_bytes = static_cast<double>(vsize);
      s.resident_bytes = static_cast<double>(rss) * static_cast<double>(sysconf(_SC_PAGESIZE));
      double boot = 0;
      if (FILE* st = std::fopen("/proc/stat", "r")) {
        char line[256];
        while (std::fgets(line, sizeof line, st)) {
          if (std::sscanf(line, "btime %lf", &boot) == 1) break;
        }
        std::fclose(st);
      }
      s.start_time_seconds = boot + static_cast<double>(starttime) / ticks;
    }
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::end(it);
       it.increment(ec)) {
    s.open_fds += 1;
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) s.max_fds = static_cast<double>(limit.rlim_cur);
  return s;
}

}  // namespace vigil
