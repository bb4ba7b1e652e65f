#include "routing/overload.h"

#include <gtest/gtest.h>

namespace vigil {
namespace {

using std::chrono::milliseconds;

PredictedWait Wait(int64_t all_ms, int64_t enough_ms) {
  return {std::chrono::duration_cast<Micros>(milliseconds(all_ms)),
          std::chrono::duration_cast<Micros>(milliseconds(enough_ms))};
}

TEST(OverloadRung, TheFirstRungThatMeetsTheDeadlineAnswers) {
  const Micros budget = std::chrono::duration_cast<Micros>(milliseconds(50));
  EXPECT_EQ(ChooseRung(budget, Wait(10, 10), Wait(1, 1)), kRungFull);
  EXPECT_EQ(ChooseRung(budget, Wait(50, 50), std::nullopt), kRungFull);  // exactly in time is in time
  EXPECT_EQ(ChooseRung(budget, Wait(80, 20), Wait(1, 1)), kRungMembersDropped);
  EXPECT_EQ(ChooseRung(budget, Wait(80, 80), Wait(1, 1)), kRungFallback);
  EXPECT_EQ(ChooseRung(budget, Wait(80, 80), Wait(60, 60)), kRungShed);
  EXPECT_EQ(ChooseRung(budget, Wait(80, 80), std::nullopt), kRungShed);  // no fallback
  // A variant that is not loaded: the fallback when it can, else on to fail with why.
  EXPECT_EQ(ChooseRung(budget, std::nullopt, Wait(1, 1)), kRungFallback);
  EXPECT_EQ(ChooseRung(budget, std::nullopt, std::nullopt), kRungFull);
  // A deadline already past sheds even an idle model that predicts nothing.
  EXPECT_EQ(ChooseRung(Micros(-1), Wait(0, 0), Wait(0, 0)), kRungShed);
}

TEST(OverloadLadder, RisesAtOnceAndStepsDownOnlyAfterRecoverAfterCalm) {
  FakeClock clock;
  OverloadPolicy policy;
  policy.recover_after_s = 10;
  OverloadLadder ladder(policy, clock.Now());
  EXPECT_EQ(ladder.rung(), kRungFull);
  EXPECT_FALSE(ladder.Record(kRungFull, clock.Now()));

  auto change = ladder.Record(kRungFallback, clock.Now());
  ASSERT_TRUE(change);
  EXPECT_EQ(change->from, kRungFull);
  EXPECT_EQ(change->to, kRungFallback);
  EXPECT_EQ(ladder.since(), clock.Now());
  change = ladder.Record(kRungShed, clock.Now());
  ASSERT_TRUE(change);
  EXPECT_EQ(change->to, kRungShed);
  clock.Advance(std::chrono::seconds(1));
  EXPECT_FALSE(ladder.Record(kRungFallback, clock.Now()));  // below the rung: no change

  // Requests at rung 0 keep coming; nothing steps down before 10 s of calm.
  for (int i = 0; i < 8; ++i) {
    clock.Advance(std::chrono::seconds(1));
    EXPECT_FALSE(ladder.Record(kRungFull, clock.Now())) << i;
  }
  EXPECT_EQ(ladder.rung(), kRungShed);
  // Rung 2 was needed 1 s after the shed: 10 s after the shed the ladder
  // steps to 2, not to 0, and to 0 a second later.
  clock.Advance(std::chrono::seconds(1));
  change = ladder.Settle(clock.Now());
  ASSERT_TRUE(change);
  EXPECT_EQ(change->from, kRungShed);
  EXPECT_EQ(change->to, kRungFallback);
  EXPECT_EQ(ladder.rung(), kRungFallback);
  EXPECT_FALSE(ladder.Settle(clock.Now()));
  clock.Advance(std::chrono::seconds(1));
  change = ladder.Settle(clock.Now());
  ASSERT_TRUE(change);
  EXPECT_EQ(change->to, kRungFull);
  EXPECT_EQ(ladder.since(), clock.Now());

  EXPECT_EQ(ladder.requests(kRungFull), 9u);
  EXPECT_EQ(ladder.requests(kRungFallback), 2u);
  EXPECT_EQ(ladder.requests(kRungShed), 1u);
  EXPECT_EQ(ladder.requests(kRungMembersDropped), 0u);
}

TEST(OverloadLadder, ARungNeededAgainWithinTheWindowHoldsIt) {
  FakeClock clock;
  OverloadPolicy policy;
  policy.recover_after_s = 2;
  OverloadLadder ladder(policy, clock.Now());
  ASSERT_TRUE(ladder.Record(kRungMembersDropped, clock.Now()));
  // A spike that comes and goes every second never lets it flap back.
  for (int i = 0; i < 10; ++i) {
    clock.Advance(milliseconds(500));
    EXPECT_FALSE(ladder.Settle(clock.Now()));
    clock.Advance(milliseconds(500));
    EXPECT_FALSE(ladder.Record(kRungMembersDropped, clock.Now()));
  }
  EXPECT_EQ(ladder.rung(), kRungMembersDropped);
  clock.Advance(milliseconds(1999));
  EXPECT_FALSE(ladder.Settle(clock.Now()));
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(ladder.Settle(clock.Now()));
  EXPECT_EQ(ladder.rung(), kRungFull);
}

TEST(OverloadLadder, RungNames) {
  EXPECT_EQ(RungName(kRungFull), "full");
  EXPECT_EQ(RungName(kRungMembersDropped), "members_dropped");
  EXPECT_EQ(RungName(kRungFallback), "fallback");
  EXPECT_EQ(RungName(kRungShed), "shed");
}

}  // namespace
}  // namespace vigil
