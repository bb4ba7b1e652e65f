#include "core/hash.h"

#include <cstring>
#include <string>

namespace vigil {
namespace {

inline uint32_t Rotl(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

inline uint32_t Mix(uint32_t k) {
  k *= 0xcc9e2d51u;
  k = Rotl(k, 15);
  k *= 0x1b873593u;
  return k;
}

}  // namespace

uint32_t Murmur3_32(std::string_view data, uint32_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const size_t n = data.size();
  const size_t blocks = n / 4;
  uint32_t h = seed;
  for (size_t i = 0; i < blocks; ++i) {
    const uint32_t k = static_cast<uint32_t>(p[4 * i]) | static_cast<uint32_t>(p[4 * i + 1]) << 8 |
                       static_cast<uint32_t>(p[4 * i + 2]) << 16 | static_cast<uint32_t>(p[4 * i + 3]) << 24;
    h ^= Mix(k);
    h = Rotl(h, 13);
    h = h * 5 + 0xe6546b64u;
  }
  const unsigned char* tail = p + blocks * 4;
  uint32_t k = 0;
  switch (n & 3) {
    case 3:
      k ^= static_cast<uint32_t>(tail[2]) << 16;
      [[fallthrough]];
    case 2:
      k ^= static_cast<uint32_t>(tail[1]) << 8;
      [[fallthrough]];
    case 1:
      k ^= tail[0];
      h ^= Mix(k);
  }
  h ^= static_cast<uint32_t>(n);
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

uint32_t StickyBucket(std::string_view salt, std::string_view key, uint32_t seed) {
  std::string buf;
  buf.reserve(salt.size() + 1 + key.size());
  buf.append(salt);
  buf.push_back(':');
  buf.append(key);
  return Murmur3_32(buf, seed) % kBuckets;
}

}  // namespace vigil
