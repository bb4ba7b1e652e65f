#include "core/uuid.h"

#include <gtest/gtest.h>

#include <set>

namespace vigil {
namespace {

TEST(UuidV7, ParsesTheRfcExample) {
  // RFC 9562, appendix A.6.
  auto prefix = UuidV7Prefix("017F22E2-79B0-7CC3-98C4-DC0C0C07398F");
  ASSERT_TRUE(prefix.has_value());
  EXPECT_EQ(*prefix, 0x017F22E279B07CC3ULL);
  EXPECT_EQ(*prefix >> 16, 0x017F22E279B0ULL);  // Tuesday, February 22, 2022 2:22:22.00 PM GMT-05:00
}

TEST(UuidV7, NewIdsAreCanonicalVersion7AndCarryTheirTime) {
  const int64_t ms = 1'795'000'000'123;
  const std::string id = NewUuidV7(ms);
  ASSERT_EQ(id.size(), 36u);
  EXPECT_EQ(id[8], '-');
  EXPECT_EQ(id[13], '-');
  EXPECT_EQ(id[14], '7');
  EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') << id;
  auto prefix = UuidV7Prefix(id);
  ASSERT_TRUE(prefix.has_value()) << id;
  EXPECT_EQ(static_cast<int64_t>(*prefix >> 16), ms);
}

TEST(UuidV7, LaterIdsSortAfterEarlierOnesAndDoNotRepeat) {
  std::set<std::string> seen;
  std::string previous;
  for (int64_t ms = 1'795'000'000'000; ms < 1'795'000'000'000 + 1000; ++ms) {
    const std::string id = NewUuidV7(ms);
    EXPECT_LT(previous, id);
    EXPECT_TRUE(seen.insert(id).second);
    previous = id;
  }
}

TEST(UuidV7, RejectsOtherForms) {
  EXPECT_FALSE(UuidV7Prefix("").has_value());
  EXPECT_FALSE(UuidV7Prefix("req-42").has_value());
  EXPECT_FALSE(UuidV7Prefix("9c5b94b1-35ad-49bb-b118-8e8fc24abf80").has_value());  // version 4
  EXPECT_FALSE(UuidV7Prefix("017F22E2-79B0-7CC3-C8C4-DC0C0C07398F").has_value());  // variant 110
  EXPECT_FALSE(UuidV7Prefix("017F22E2-79B0-7CC3-98C4-DC0C0C07398").has_value());   // short
  EXPECT_FALSE(UuidV7Prefix("017F22E2x79B0-7CC3-98C4-DC0C0C07398F").has_value());  // no dash
  EXPECT_FALSE(UuidV7Prefix("017F22E2-79B0-7CC3-98C4-DC0C0C07398G").has_value());  // not hex
}

}  // namespace
}  // namespace vigil
