#include "store/prediction_log.h"

#include <gtest/gtest.h>

#include <atomic>

#include "core/eventually.h"

namespace vigil {
namespace {

// A PredictionStore in memory. WritePredictions can be held shut, to fill
// the queue behind a slow disk, and made to fail.
class FakePredictionStore final : public PredictionStore {
 public:
  Status WritePredictions(const std::vector<PredictionRecord>& records) override {
    MutexLock lock(mu_);
    ++writes_entered_;
    while (held_) opened_.Wait(lock);
    if (fail_) return Internal("disk full");
    for (const auto& r : records) ids_.push_back(r.id);
    batches_.push_back(records.size());
    return Status::Ok();
  }
  StatusOr<int64_t> PrunePredictions(int64_t before_ms, int64_t max_rows) override {
    MutexLock lock(mu_);
    prune_before_ms_.push_back(before_ms);
    return int64_t{0};
  }

  void Hold() {
    MutexLock lock(mu_);
    held_ = true;
  }
  void Open() {
    {
      MutexLock lock(mu_);
      held_ = false;
    }
    opened_.NotifyAll();
  }
  void Fail() {
    MutexLock lock(mu_);
    fail_ = true;
  }
  int writes_entered() {
    MutexLock lock(mu_);
    return writes_entered_;
  }
  std::vector<std::string> ids() {
    MutexLock lock(mu_);
    return ids_;
  }
  std::vector<size_t> batches() {
    MutexLock lock(mu_);
    return batches_;
  }
  std::vector<int64_t> prune_before_ms() {
    MutexLock lock(mu_);
    return prune_before_ms_;
  }

 private:
  Mutex mu_;
  CondVar opened_;
  bool held_ GUARDED_BY(mu_) = false;
  bool fail_ GUARDED_BY(mu_) = false;
  int writes_entered_ GUARDED_BY(mu_) = 0;
  std::vector<std::string> ids_ GUARDED_BY(mu_);
  std::vector<size_t> batches_ GUARDED_BY(mu_);
  std::vector<int64_t> prune_before_ms_ GUARDED_BY(mu_);
};

PredictionRecord Record(const std::string& id) {
  PredictionRecord r;
  r.id = id;
  r.endpoint = "e";
  return r;
}

struct Counts {
  std::atomic<size_t> written{0}, dropped{0};
};

PredictionLog::Options CountingOptions(Counts& counts) {
  PredictionLog::Options o;
  o.on_records = [&counts](size_t written, size_t dropped) {
    counts.written += written;
    counts.dropped += dropped;
  };
  return o;
}

TEST(PredictionLog, FlushReturnsOnceEverythingQueuedIsWrittenInOrder) {
  FakePredictionStore store;
  Counts counts;
  auto options = CountingOptions(counts);
  options.flush_interval = std::chrono::hours(1);  // only Flush or a full batch wakes the writer
  options.batch_limit = 1000;
  PredictionLog log(store, options);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(log.Add(Record("p" + std::to_string(i))));
  log.Flush();
  const auto ids = store.ids();
  ASSERT_EQ(ids.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ids[i], "p" + std::to_string(i));
  EXPECT_EQ(counts.written.load(), 10u);
  EXPECT_EQ(counts.dropped.load(), 0u);
}

TEST(PredictionLog, AFullBatchWakesTheWriterBeforeTheInterval) {
  FakePredictionStore store;
  auto options = PredictionLog::Options{};
  options.flush_interval = std::chrono::hours(1);
  options.batch_limit = 4;
  PredictionLog log(store, options);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(log.Add(Record(std::to_string(i))));
  EXPECT_TRUE(Eventually([&] { return store.ids().size() == 4; }));
}

TEST(PredictionLog, WhenTheDiskIsSlowTheQueueIsBoundedAndDropsAreCounted) {
  FakePredictionStore store;
  store.Hold();
  Counts counts;
  auto options = CountingOptions(counts);
  options.queue_limit = 3;
  options.batch_limit = 1;
  PredictionLog log(store, options);
  ASSERT_TRUE(log.Add(Record("a")));
  ASSERT_TRUE(Eventually([&] { return store.writes_entered() == 1; }));  // "a" is being written
  EXPECT_TRUE(log.Add(Record("b")));
  EXPECT_TRUE(log.Add(Record("c")));
  EXPECT_FALSE(log.Add(Record("d")));  // a + b + c fill the limit
  EXPECT_FALSE(log.Add(Record("e")));
  EXPECT_EQ(counts.dropped.load(), 2u);
  store.Open();
  log.Flush();
  EXPECT_EQ(store.ids(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(counts.written.load(), 3u);
}

TEST(PredictionLog, AFailedWriteIsCountedAsDroppedAndFlushStillReturns) {
  FakePredictionStore store;
  store.Fail();
  Counts counts;
  PredictionLog log(store, CountingOptions(counts));
  ASSERT_TRUE(log.Add(Record("a")));
  ASSERT_TRUE(log.Add(Record("b")));
  log.Flush();
  EXPECT_EQ(counts.dropped.load(), 2u);
  EXPECT_EQ(counts.written.load(), 0u);
}

TEST(PredictionLog, RetentionIsMeasuredByTheInjectedWallClock) {
  FakePredictionStore store;
  FakeWallClock clock(5'000'000);
  auto options = PredictionLog::Options{};
  options.clock = &clock;
  options.retention_ms = 1'000;
  options.max_rows = 7;
  PredictionLog log(store, options);
  ASSERT_TRUE(Eventually([&] { return !store.prune_before_ms().empty(); }));
  EXPECT_EQ(store.prune_before_ms().front(), 4'999'000);
}

TEST(PredictionLog, WhatIsQueuedIsWrittenWhenTheLogStops) {
  FakePredictionStore store;
  auto options = PredictionLog::Options{};
  options.flush_interval = std::chrono::hours(1);
  {
    PredictionLog log(store, options);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(log.Add(Record(std::to_string(i))));
  }
  EXPECT_EQ(store.ids().size(), 5u);
}

}  // namespace
}  // namespace vigil
