#include "scheduling/batch_queue.h"

#include <gtest/gtest.h>

#include <limits>

#include "scheduling/test_util.h"

namespace vigil {
namespace {

using testing::MakeRequest;

const SteadyTime kT0 = SteadyTime(Micros(1'000'000));

BatchQueue::Options Opts(int64_t max_batch, int64_t delay_us, std::vector<int64_t> preferred = {},
                         size_t max_queue = 100) {
  BatchQueue::Options o;
  o.max_batch_size = max_batch;
  o.max_queue_delay = Micros(delay_us);
  o.preferred_batch_sizes = std::move(preferred);
  o.max_queue_size = max_queue;
  return o;
}

void Add(BatchQueue& q, std::unique_ptr<InferenceRequest> r) {
  ASSERT_TRUE(q.Enqueue(r).ok());
  ASSERT_EQ(r, nullptr);  // taken on success
}

std::vector<std::string> Ids(const std::vector<std::unique_ptr<InferenceRequest>>& v) {
  std::vector<std::string> out;
  for (const auto& r : v) out.push_back(r->id);
  return out;
}

TEST(BatchQueue, WaitsForTheDelayThenDispatchesWhatItHas) {
  BatchQueue q(Opts(8, 500));
  Add(q, MakeRequest("a", 1, kT0));
  Add(q, MakeRequest("b", 2, kT0 + Micros(100)));
  auto d = q.Poll(kT0 + Micros(200));
  EXPECT_TRUE(d.batch.empty());
  ASSERT_TRUE(d.wake_at.has_value());
  EXPECT_EQ(*d.wake_at, kT0 + Micros(500));  // oldest + delay
  d = q.Poll(kT0 + Micros(500));
  EXPECT_EQ(Ids(d.batch), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(q.empty());
}

TEST(BatchQueue, DispatchesAtOnceWhenFullAndNeverExceedsMaxBatch) {
  BatchQueue q(Opts(4, 1'000'000));
  Add(q, MakeRequest("a", 3, kT0));
  Add(q, MakeRequest("b", 2, kT0));  // does not fit with a
  auto d = q.Poll(kT0);
  EXPECT_EQ(Ids(d.batch), (std::vector<std::string>{"a"}));
  Add(q, MakeRequest("c", 2, kT0));
  d = q.Poll(kT0);
  EXPECT_EQ(Ids(d.batch), (std::vector<std::string>{"b", "c"}));  // exactly 4 rows
}

TEST(BatchQueue, DispatchesAtThePreferredSizeWithoutWaiting) {
  BatchQueue q(Opts(16, 1'000'000, {2, 4}));
  Add(q, MakeRequest("a", 1, kT0));
  EXPECT_TRUE(q.Poll(kT0).batch.empty());
  Add(q, MakeRequest("b", 1, kT0));
  Add(q, MakeRequest("c", 1, kT0));
  EXPECT_TRUE(q.Poll(kT0).batch.empty());  // 3 rows: below the largest preferred size
  Add(q, MakeRequest("d", 1, kT0));
  Add(q, MakeRequest("e", 1, kT0));
  auto d = q.Poll(kT0);
  EXPECT_EQ(Ids(d.batch), (std::vector<std::string>{"a", "b", "c", "d"}));  // trimmed to 4
  EXPECT_EQ(q.size(), 1u);
}

TEST(BatchQueue, ZeroDelayDispatchesImmediately) {
  BatchQueue q(Opts(8, 0));
  Add(q, MakeRequest("a", 1, kT0));
  EXPECT_EQ(q.Poll(kT0).batch.size(), 1u);
}

TEST(BatchQueue, WithoutBatchingRunsOneRequestAtATime) {
  BatchQueue q(Opts(0, 1000));
  Add(q, MakeRequest("a", 1, kT0));
  Add(q, MakeRequest("b", 1, kT0));
  EXPECT_EQ(Ids(q.Poll(kT0).batch), (std::vector<std::string>{"a"}));
  EXPECT_EQ(Ids(q.Poll(kT0).batch), (std::vector<std::string>{"b"}));
}

TEST(BatchQueue, HigherPriorityGoesFirst) {
  BatchQueue q(Opts(2, 0));
  auto low = MakeRequest("low", 1, kT0);
  auto urgent = MakeRequest("urgent", 1, kT0 + Micros(5));
  urgent->priority = 1;
  auto normal = MakeRequest("normal", 1, kT0 + Micros(1));
  normal->priority = 5;
  Add(q, std::move(low));
  Add(q, std::move(normal));
  Add(q, std::move(urgent));
  EXPECT_EQ(Ids(q.Poll(kT0 + Micros(10)).batch), (std::vector<std::string>{"urgent", "normal"}));
  EXPECT_EQ(Ids(q.Poll(kT0 + Micros(10)).batch), (std::vector<std::string>{"low"}));
}

TEST(BatchQueue, ExpiredRequestsAreRemovedAndNeverBatched) {
  BatchQueue q(Opts(8, 1000));
  auto a = MakeRequest("a", 1, kT0);
  a->deadline = kT0 + Micros(300);
  Add(q, std::move(a));
  Add(q, MakeRequest("b", 1, kT0 + Micros(100)));
  auto d = q.Poll(kT0 + Micros(200));
  EXPECT_TRUE(d.batch.empty());
  EXPECT_EQ(*d.wake_at, kT0 + Micros(300));  // wakes for the deadline first
  d = q.Poll(kT0 + Micros(300));
  EXPECT_EQ(Ids(d.expired), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(d.batch.empty());
  d = q.Poll(kT0 + Micros(1100));
  EXPECT_EQ(Ids(d.batch), (std::vector<std::string>{"b"}));
}

// What admission predicts from: the rows a request of each priority would
// wait behind, kept as requests come, run, expire or are taken.
TEST(BatchQueue, CountsTheRowsAheadOfEachPriority) {
  BatchQueue q(Opts(4, 1000));
  auto urgent = MakeRequest("urgent", 2, kT0);
  urgent->priority = 1;
  auto late = MakeRequest("late", 3, kT0);
  late->deadline = kT0 + Micros(50);
  Add(q, MakeRequest("low", 3, kT0));
  Add(q, std::move(urgent));
  Add(q, std::move(late));
  EXPECT_EQ(q.RowsAheadOf(1), 2);
  EXPECT_EQ(q.RowsAheadOf(std::numeric_limits<uint32_t>::max()), 8);
  auto d = q.Poll(kT0 + Micros(100));  // "late" expires; "urgent" (2) runs, "low" (3) would not fit
  EXPECT_EQ(Ids(d.expired), (std::vector<std::string>{"late"}));
  EXPECT_EQ(Ids(d.batch), (std::vector<std::string>{"urgent"}));
  EXPECT_EQ(q.RowsAheadOf(1), 0);
  EXPECT_EQ(q.RowsAheadOf(std::numeric_limits<uint32_t>::max()), 3);
  q.TakeAll();
  EXPECT_EQ(q.RowsAheadOf(std::numeric_limits<uint32_t>::max()), 0);
}

TEST(BatchQueue, CancelledRequestsAreRemovedAndNeverBatched) {
  BatchQueue q(Opts(8, 1000));
  auto a = MakeRequest("a", 1, kT0);
  a->cancel = CancelToken::Create();
  const CancelToken token = a->cancel;
  Add(q, std::move(a));
  Add(q, MakeRequest("b", 1, kT0));
  token.Cancel();
  auto d = q.Poll(kT0 + Micros(10));
  EXPECT_EQ(Ids(d.expired), (std::vector<std::string>{"a"}));
  EXPECT_EQ(q.size(), 1u);  // the slot is free again
  d = q.Poll(kT0 + Micros(1000));
  EXPECT_EQ(Ids(d.batch), (std::vector<std::string>{"b"}));
}

TEST(BatchQueue, FullQueueRejectsAndLeavesTheRequestWithTheCaller) {
  BatchQueue q(Opts(8, 1000, {}, 2));
  Add(q, MakeRequest("a", 1, kT0));
  Add(q, MakeRequest("b", 1, kT0));
  auto c = MakeRequest("c", 1, kT0);
  const Status s = q.Enqueue(c);
  EXPECT_EQ(s.code(), StatusCode::kOverloaded);
  EXPECT_NE(s.message().find("queue full"), std::string::npos);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->id, "c");
}

TEST(BatchQueue, DifferentRowShapesDoNotShareABatch) {
  BatchQueue q(Opts(8, 0));
  Add(q, MakeRequest("w2", 1, kT0, 2));
  Add(q, MakeRequest("w3", 1, kT0, 3));
  EXPECT_EQ(Ids(q.Poll(kT0).batch), (std::vector<std::string>{"w2"}));
  EXPECT_EQ(Ids(q.Poll(kT0).batch), (std::vector<std::string>{"w3"}));
}

}  // namespace
}  // namespace vigil
