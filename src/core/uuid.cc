#include "core/uuid.h"

#include <array>
#include <random>

namespace vigil {
namespace {

// Hex digit values by character; -1 for anything else.
constexpr auto kHexValues = [] {
  std::array<int8_t, 256> t{};
  t.fill(-1);
  for (int c = 0; c < 10; ++c) t['0' + c] = static_cast<int8_t>(c);
  for (int c = 0; c < 6; ++c) t['a' + c] = t['A' + c] = static_cast<int8_t>(10 + c);
  return t;
}();

int HexValue(char c) { return kHexValues[static_cast<unsigned char>(c)]; }

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
  // The first 64 bits are the 16 hex digits before the third dash.
  uint64_t hi = 0;
  int bad = 0;
  for (size_t i : {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17}) {
    const int v = HexValue(text[i]);
    bad |= v;
    hi = (hi << 4) | static_cast<uint64_t>(v & 0xf);
  }
  for (size_t i : {19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35}) bad |= HexValue(text[i]);
  if (bad < 0) return std::nullopt;
  return hi;
}

}  // namespace vigil
