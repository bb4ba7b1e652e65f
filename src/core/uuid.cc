#include "core/uuid.h"

#include <random>

namespace vigil {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsDash(size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

}  // namespace

std::string NewUuidV7(int64_t unix_ms) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  const uint64_t r1 = rng(), r2 = rng();
  const uint64_t hi = (static_cast<uint64_t>(unix_ms) << 16) | 0x7000u | (r1 & 0x0fffu);
  const uint64_t lo = (r2 & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(36, '-');
  size_t pos = 0;
  for (int nibble = 0; nibble < 32; ++nibble) {
    if (IsDash(pos)) ++pos;
    const uint64_t word = nibble < 16 ? hi : lo;
    s[pos++] = kHex[(word >> (60 - 4 * (nibble % 16))) & 0xf];
  }
  return s;
}

std::optional<uint64_t> UuidV7Prefix(std::string_view text) {
  // Cheap rejections first: most ids that are not UUIDv7 fail here.
  if (text.size() != 36 || text[14] != '7' || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-' ||
      (HexValue(text[19]) & 0xc) != 0x8) {
    return std::nullopt;
  }
  uint64_t hi = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (IsDash(i)) continue;
    const int v = HexValue(text[i]);
    if (v < 0) return std::nullopt;
    if (i < 18) hi = (hi << 4) | static_cast<uint64_t>(v);
  }
  return hi;
}

}  // namespace vigil
