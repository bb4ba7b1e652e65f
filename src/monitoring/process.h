// Process-level readings for /metrics.
#pragma once

#include <cstdint>

namespace vigil {

// Resident set size of this process in bytes (from /proc/self/statm); 0 if unknown.
uint64_t ProcessResidentBytes();

}  // namespace vigil
