// Hashing for sticky assignment (shared/STATISTICS.md): MurmurHash3 x86_32
// and the bucket of a routing key within a layer.
#pragma once

#include <cstdint>
#include <string_view>

namespace vigil {

// MurmurHash3_x86_32 (Austin Appleby's reference), little-endian reads.
uint32_t Murmur3_32(std::string_view data, uint32_t seed = 0);

inline constexpr uint32_t kBuckets = 10000;

// murmur3_x86_32(salt + ":" + key, seed) mod 10,000: the unit's bucket in
// the layer named by `salt`. Shares are compared as cumulative percent × 100.
uint32_t StickyBucket(std::string_view salt, std::string_view key, uint32_t seed = 0);

}  // namespace vigil
