#include "core/hash.h"

#include <gtest/gtest.h>

#include <string>

namespace vigil {
namespace {

// Published MurmurHash3_x86_32 vectors (SMHasher's reference implementation).
TEST(Murmur3, GoldenVectors) {
  EXPECT_EQ(Murmur3_32("", 0), 0u);
  EXPECT_EQ(Murmur3_32("", 1), 0x514E28B7u);
  EXPECT_EQ(Murmur3_32("", 0xffffffffu), 0x81F16F39u);
  EXPECT_EQ(Murmur3_32(std::string_view("\0\0\0\0", 4), 0), 0x2362F9DEu);
  EXPECT_EQ(Murmur3_32("aaaa", 0x9747b28c), 0x5A97808Au);
  EXPECT_EQ(Murmur3_32("aaa", 0x9747b28c), 0x283E0130u);
  EXPECT_EQ(Murmur3_32("aa", 0x9747b28c), 0x5D211726u);
  EXPECT_EQ(Murmur3_32("a", 0x9747b28c), 0x7FA09EA6u);
  EXPECT_EQ(Murmur3_32("abcd", 0x9747b28c), 0xF0478627u);
  EXPECT_EQ(Murmur3_32("abc", 0x9747b28c), 0xC84A62DDu);
  EXPECT_EQ(Murmur3_32("ab", 0x9747b28c), 0x74875592u);
  EXPECT_EQ(Murmur3_32("Hello, world!", 0x9747b28c), 0x24884CBAu);
  EXPECT_EQ(Murmur3_32("The quick brown fox jumps over the lazy dog", 0x9747b28c), 0x2FA826CDu);
  EXPECT_EQ(Murmur3_32("test", 0), 0xBA6BD213u);
}

TEST(Murmur3, BucketsAreUniformAndSaltsIndependent) {
  std::vector<int> a(100), b(100);
  int same = 0;
  for (int i = 0; i < 100000; ++i) {
    const std::string key = "user-" + std::to_string(i);
    const uint32_t x = StickyBucket("split", key), y = StickyBucket("shadow", key);
    ASSERT_LT(x, kBuckets);
    ++a[x / 100];
    ++b[y / 100];
    same += (x / 100) == (y / 100);
  }
  for (int i = 0; i < 100; ++i) {
    EXPECT_NEAR(a[i], 1000, 150) << i;  // ~4.7 sigma
    EXPECT_NEAR(b[i], 1000, 150) << i;
  }
  EXPECT_NEAR(same, 1000, 150);  // two salts agree on a percentile only by chance
  EXPECT_EQ(StickyBucket("split", "u1"), Murmur3_32("split:u1") % 10000);
}

}  // namespace
}  // namespace vigil
