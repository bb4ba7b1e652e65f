// Names the calling thread (shown by top -H, perf, gdb); at most 15 bytes
// are kept.
#pragma once

#include <pthread.h>

#include <string>

namespace vigil {

inline void SetThreadName(std::string name) {
  if (name.size() > 15) name.resize(15);
  pthread_setname_np(pthread_self(), name.c_str());
}

}  // namespace vigil
