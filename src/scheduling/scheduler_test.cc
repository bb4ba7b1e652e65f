#include "scheduling/scheduler.h"

#include <gtest/gtest.h>

#include <limits>
#include <map>

#include "core/eventually.h"
#include "scheduling/test_util.h"

namespace vigil {
namespace {

using testing::MakeRequest;

// Doubles its input. A negative first value fails the whole batch. While
// `hold` is set, Execute blocks until it is cleared.
class FakeBackend final : public Backend {
 public:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    bool hold = false;
    int running = 0;
    int max_running = 0;
    std::vector<int64_t> batch_rows;
    std::vector<float> first_values;
    FakeClock* clock = nullptr;  // when set, each batch takes `cost` of its time
    Micros cost{0};
  };
  explicit FakeBackend(Shared* shared) : shared_(shared) {}

  Status Execute(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override {
    {
      std::unique_lock lock(shared_->mu);
      shared_->batch_rows.push_back(inputs[0].shape[0]);
      shared_->first_values.push_back(inputs[0].as<float>()[0]);
      shared_->running++;
      shared_->max_running = std::max(shared_->max_running, shared_->running);
      shared_->cv.notify_all();
      shared_->cv.wait(lock, [&] { return !shared_->hold; });
      shared_->running--;
      if (shared_->clock) shared_->clock->Advance(shared_->cost);
    }
    const float* in = inputs[0].as<float>();
    for (int64_t i = 0; i < inputs[0].element_count(); ++i) {
      if (in[i] < 0) return Internal("poisoned row");
    }
    Tensor out = inputs[0];
    out.name = "y";
    for (int64_t i = 0; i < out.element_count(); ++i) out.mutable_as<float>()[i] *= 2;
    outputs = {std::move(out)};
    return Status::Ok();
  }

 private:
  Shared* shared_;
};

class Results {
 public:
  std::function<void(InferenceResult&&)> Callback(const std::string& id) {
    return [this, id](InferenceResult&& r) {
      std::lock_guard lock(mu_);
      results_[id] = std::move(r);
      cv_.notify_all();
    };
  }
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return results_.size() >= n; });
  }
  InferenceResult& operator[](const std::string& id) {
    std::lock_guard lock(mu_);
    return results_.at(id);
  }
  size_t size() {
    std::lock_guard lock(mu_);
    return results_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, InferenceResult> results_;
};

class SchedulerTest : public ::testing::Test {
 protected:
  std::unique_ptr<Scheduler> Make(int instances, int64_t max_batch, int64_t delay_us, size_t max_queue = 100,
                                  std::function<void(const Tensor&, const Tensor&, int64_t)> observer = nullptr) {
    Scheduler::Options o;
    o.observer = std::move(observer);
    o.model_name = "fake";
    o.version = 1;
    o.max_batch_size = max_batch;
    o.queue.max_batch_size = max_batch;
    o.queue.max_queue_delay = Micros(delay_us);
    o.queue.max_queue_size = max_queue;
    o.outputs = {{"y", DataType::kFp32, {2}}};
    o.clock = &clock_;
    std::vector<std::unique_ptr<Backend>> backends;
    for (int i = 0; i < instances; ++i) backends.push_back(std::make_unique<FakeBackend>(&shared_));
    auto s = Scheduler::Create(std::move(o), std::move(backends));
    EXPECT_TRUE(s.ok());
    return std::move(s).value();
  }
  void Submit(Scheduler& s, const std::string& id, int64_t rows, float first_value = 0, bool monitored = true) {
    auto r = MakeRequest(id, rows, {}, 2, first_value);
    r->monitored = monitored;
    r->done = results_.Callback(id);
    ASSERT_TRUE(s.Enqueue(r).ok());
  }
  void WaitForExecutions(size_t n) {
    std::unique_lock lock(shared_.mu);
    ASSERT_TRUE(shared_.cv.wait_for(lock, std::chrono::seconds(10), [&] { return shared_.batch_rows.size() >= n; }));
  }

  FakeClock clock_;
  FakeBackend::Shared shared_;
  Results results_;
};

TEST_F(SchedulerTest, BatchesRequestsThatArriveWithinTheDelay) {
  auto s = Make(1, 16, 1000);
  Submit(*s, "a", 1, 10);
  Submit(*s, "b", 2, 20);
  Submit(*s, "c", 1, 30);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(results_.size(), 0u);  // fake time has not moved: still waiting
  clock_.Advance(Micros(1000));
  ASSERT_TRUE(results_.WaitFor(3));
  EXPECT_EQ(shared_.batch_rows, (std::vector<int64_t>{4}));
  // Each request gets back exactly its own rows, doubled.
  EXPECT_EQ(results_["a"].outputs[0].shape, (Shape{1, 2}));
  EXPECT_EQ(results_["a"].outputs[0].as<float>()[0], 20);
  EXPECT_EQ(results_["b"].outputs[0].shape, (Shape{2, 2}));
  EXPECT_EQ(results_["b"].outputs[0].as<float>()[0], 40);
  EXPECT_EQ(results_["b"].outputs[0].as<float>()[2], 42);
  EXPECT_EQ(results_["c"].outputs[0].as<float>()[1], 60);
  EXPECT_EQ(results_["c"].batch_rows, 4);
  const SchedulerStats st = s->Stats();
  EXPECT_EQ(st.execution_count, 1u);
  EXPECT_EQ(st.inference_count, 4u);
  EXPECT_EQ(st.success_count, 3u);
  ASSERT_EQ(st.batch_stats.size(), 1u);
  EXPECT_EQ(st.batch_stats.begin()->first, 4);
  EXPECT_EQ(st.batch_stats.begin()->second.count, 1u);
}

TEST_F(SchedulerTest, TheObserverDoesNotSeeTheRowsOfAReplay) {
  std::vector<float> seen_inputs, seen_outputs;  // the first value of each observed row
  auto s = Make(1, 16, 1000, 100, [&](const Tensor& in, const Tensor& out, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r) {
      seen_inputs.push_back(in.as<float>()[r * 2]);
      seen_outputs.push_back(out.as<float>()[r * 2]);
    }
  });
  Submit(*s, "a", 1, 10);
  Submit(*s, "replay", 2, 20, /*monitored=*/false);
  Submit(*s, "c", 1, 30);
  clock_.Advance(Micros(1000));
  ASSERT_TRUE(results_.WaitFor(3));
  EXPECT_EQ(shared_.batch_rows, (std::vector<int64_t>{4})) << "one batch all the same";
  EXPECT_EQ(results_["replay"].outputs[0].as<float>()[0], 40);
  EXPECT_EQ(seen_inputs, (std::vector<float>{10, 30}));
  EXPECT_EQ(seen_outputs, (std::vector<float>{20, 60}));
  // A batch of monitored requests only is observed whole.
  Submit(*s, "d", 2, 40);
  clock_.Advance(Micros(1000));
  ASSERT_TRUE(results_.WaitFor(4));
  EXPECT_EQ(seen_inputs, (std::vector<float>{10, 30, 40, 41}));
}

TEST_F(SchedulerTest, AFailedBatchFailsOnlyItsOwnRequests) {
  auto s = Make(1, 4, 0);
  shared_.hold = true;
  Submit(*s, "first", 1, 1);  // runs alone and blocks
  WaitForExecutions(1);
  Submit(*s, "poison", 1, -5);
  Submit(*s, "mate", 1, 3);  // shares the poisoned batch
  {
    std::lock_guard lock(shared_.mu);
    shared_.hold = false;
  }
  shared_.cv.notify_all();
  ASSERT_TRUE(results_.WaitFor(3));
  Submit(*s, "after", 1, 7);
  ASSERT_TRUE(results_.WaitFor(4));
  EXPECT_TRUE(results_["first"].status.ok());
  EXPECT_EQ(results_["poison"].status.code(), StatusCode::kInternal);
  EXPECT_NE(results_["poison"].status.message().find("poisoned"), std::string::npos);
  EXPECT_EQ(results_["mate"].status.code(), StatusCode::kInternal);
  EXPECT_TRUE(results_["after"].status.ok());
}

TEST_F(SchedulerTest, ARequestThatExpiresInTheQueueIsNeverExecuted) {
  auto s = Make(1, 4, 0);
  shared_.hold = true;
  Submit(*s, "blocker", 1, 1);
  WaitForExecutions(1);
  auto r = MakeRequest("late", 1, {}, 2, 99);
  r->deadline = clock_.Now() + Micros(500);
  r->done = results_.Callback("late");
  ASSERT_TRUE(s->Enqueue(r).ok());
  clock_.Advance(Micros(600));
  {
    std::lock_guard lock(shared_.mu);
    shared_.hold = false;
  }
  shared_.cv.notify_all();
  ASSERT_TRUE(results_.WaitFor(2));
  EXPECT_EQ(results_["late"].status.code(), StatusCode::kDeadlineExceeded);
  std::lock_guard lock(shared_.mu);
  for (float v : shared_.first_values) EXPECT_NE(v, 99);  // never reached the backend
}

TEST_F(SchedulerTest, PredictedWaitCountsTheBatchesAheadAndShedsWhatCannotFinishInTime) {
  auto s = Make(1, 4, 0);
  shared_.clock = &clock_;
  shared_.cost = Micros(1000);
  EXPECT_EQ(s->PredictedWait(), Micros(0)) << "nothing known before the first batch";
  for (int i = 0; i < 4; ++i) {  // one request per batch, 1 ms each
    Submit(*s, "warm" + std::to_string(i), 1);
    ASSERT_TRUE(results_.WaitFor(static_cast<size_t>(i + 1)));
  }
  // Idle (once the worker has let go of the instance, just after the answer): its own batch.
  EXPECT_TRUE(Eventually([&] { return s->PredictedWait() == Micros(1000); })) << s->PredictedWait().count();
  // A request of more rows than recent batches held costs proportionally more.
  EXPECT_EQ(s->PredictedWait(std::numeric_limits<uint32_t>::max(), 3), Micros(3000));
  EXPECT_EQ(s->PredictedWait(std::numeric_limits<uint32_t>::max(), 99), Micros(4000)) << "at most max_batch_size";
  shared_.hold = true;
  Submit(*s, "blocker", 1);
  WaitForExecutions(5);
  for (int i = 0; i < 3; ++i) Submit(*s, "queued" + std::to_string(i), 1);
  // Busy: what the running batch has left (all of it: the clock has not
  // moved since it began), three batches ahead and its own.
  EXPECT_EQ(s->PredictedWait(), Micros(1000 + 4 * 1000));
  EXPECT_EQ(s->PredictedWait(1), Micros(1000 + 1000)) << "a higher priority overtakes the queue";
  clock_.Advance(Micros(600));  // the running batch has 400 us left
  EXPECT_EQ(s->PredictedWait(), Micros(400 + 4 * 1000));
  clock_.Advance(Micros(1000));  // it overran: it may end at any moment
  EXPECT_EQ(s->PredictedWait(), Micros(4 * 1000));
  auto late = MakeRequest("late", 1, {});
  late->deadline = clock_.Now() + Micros(2000);
  late->done = results_.Callback("late");
  const Status shed = s->Enqueue(late);
  EXPECT_EQ(shed.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(shed.message().find("would answer in about 4.0 ms (3 requests waiting), after the request's deadline "
                                "in 2.0 ms: shed"),
            std::string::npos)
      << shed.message();
  ASSERT_TRUE(late) << "the caller still owns a shed request";
  auto in_time = MakeRequest("in_time", 1, {});
  in_time->deadline = clock_.Now() + Micros(10'000);
  in_time->done = results_.Callback("in_time");
  EXPECT_TRUE(s->Enqueue(in_time).ok());
  {
    std::lock_guard lock(shared_.mu);
    shared_.hold = false;
  }
  shared_.cv.notify_all();
  ASSERT_TRUE(results_.WaitFor(9));
  EXPECT_TRUE(results_["in_time"].status.ok());
}

// A slow load (the runtime's first call) must not shed a version's traffic
// for good: the last load call stands alone as the estimate, and an idle
// version whose estimate misses every deadline is tried again after a second.
TEST_F(SchedulerTest, AnEstimateTooHighForEveryDeadlineIsMeasuredAgain) {
  auto s = Make(1, 4, 0);
  shared_.clock = &clock_;
  auto direct = [&](Micros cost) {
    shared_.cost = cost;
    return s->RunDirect(MakeRequest("load", 1, {}, 2, 1)->inputs, 1).ok();
  };
  ASSERT_TRUE(direct(Micros(300'000)));  // the first call at load
  ASSERT_TRUE(direct(Micros(2'000)));    // warm-up: the last one stands
  shared_.cost = Micros(2'000);
  shared_.hold = true;
  Submit(*s, "blocker", 1);
  WaitForExecutions(1);
  // Busy: the running batch's 2 ms and its own 2 ms (averaged with the slow
  // first call instead, it would be over 500 ms).
  EXPECT_EQ(s->PredictedWait(), Micros(4'000));
  {
    std::lock_guard lock(shared_.mu);
    shared_.hold = false;
  }
  shared_.cv.notify_all();
  ASSERT_TRUE(results_.WaitFor(1));

  // One very slow batch: idle, it now predicts more than a 10 ms deadline allows.
  shared_.cost = Micros(500'000);
  Submit(*s, "slow", 1);
  ASSERT_TRUE(results_.WaitFor(2));
  // Idle once the worker lets go of the instance (just after the answer):
  // its own batch at the mean, 2 ms + (500 ms - 2 ms) / 8.
  ASSERT_TRUE(Eventually([&] { return s->PredictedWait() == Micros(64'250); })) << s->PredictedWait().count();
  shared_.cost = Micros(2'000);
  auto shed = MakeRequest("shed", 1, {});
  shed->deadline = clock_.Now() + Micros(10'000);
  shed->done = results_.Callback("shed");
  EXPECT_EQ(s->Enqueue(shed).code(), StatusCode::kResourceExhausted);
  // A second without a batch: tried again, and measured.
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(s->PredictedWait(), Micros(0));
  auto tried = MakeRequest("tried", 1, {});
  tried->deadline = clock_.Now() + Micros(10'000);
  tried->done = results_.Callback("tried");
  ASSERT_TRUE(s->Enqueue(tried).ok());
  ASSERT_TRUE(results_.WaitFor(3));
  EXPECT_TRUE(results_["tried"].status.ok());
  EXPECT_GT(s->PredictedWait(), Micros(0)) << "the trial's batch started the clock again";
}

TEST_F(SchedulerTest, FullQueueIsRejectedWithAMessage) {
  auto s = Make(1, 4, 0, 1);
  shared_.hold = true;
  Submit(*s, "running", 1);
  WaitForExecutions(1);
  Submit(*s, "queued", 1);
  auto r = MakeRequest("rejected", 1, {});
  const Status st = s->Enqueue(r);
  EXPECT_EQ(st.code(), StatusCode::kOverloaded);
  EXPECT_NE(st.message().find("queue full"), std::string::npos);
  ASSERT_NE(r, nullptr);
  {
    std::lock_guard lock(shared_.mu);
    shared_.hold = false;
  }
  shared_.cv.notify_all();
  ASSERT_TRUE(results_.WaitFor(2));
}

TEST_F(SchedulerTest, InstancesRunBatchesConcurrently) {
  auto s = Make(2, 1, 0);
  shared_.hold = true;
  Submit(*s, "a", 1);
  Submit(*s, "b", 1);
  WaitForExecutions(2);
  {
    std::lock_guard lock(shared_.mu);
    EXPECT_EQ(shared_.max_running, 2);
    shared_.hold = false;
  }
  shared_.cv.notify_all();
  ASSERT_TRUE(results_.WaitFor(2));
}

TEST_F(SchedulerTest, StopDrainsEveryQueuedRequest) {
  auto s = Make(1, 2, 1'000'000);
  for (int i = 0; i < 5; ++i) Submit(*s, "r" + std::to_string(i), 1);
  s->Stop();  // the one-second delay is not waited out
  EXPECT_EQ(results_.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(results_["r" + std::to_string(i)].status.ok());
  auto late = MakeRequest("late", 1, {});
  EXPECT_EQ(s->Enqueue(late).code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

TEST_F(SchedulerTest, StopWithCancelAnswersQueuedRequestsWithoutRunningThem) {
  auto s = Make(1, 2, 1'000'000);
  for (int i = 0; i < 3; ++i) Submit(*s, "q" + std::to_string(i), 1);
  s->Stop(Scheduler::StopMode::kCancel);
  ASSERT_EQ(results_.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(results_["q" + std::to_string(i)].status.code(), StatusCode::kUnavailable);
  }
  std::lock_guard lock(shared_.mu);
  EXPECT_TRUE(shared_.batch_rows.empty());
}

TEST_F(SchedulerTest, QueueOnlyWaitsForRunIfIdle) {
  auto s = Make(1, 8, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the worker is asleep on an empty queue
  for (int i = 0; i < 3; ++i) {
    auto r = MakeRequest("d" + std::to_string(i), 1, {});
    r->done = results_.Callback(r->id);
    ASSERT_TRUE(s->Enqueue(r, Scheduler::EnqueueMode::kQueueOnly).ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(results_.size(), 0u);  // nobody was woken
  s->RunIfIdle();
  ASSERT_TRUE(results_.WaitFor(3));
  std::lock_guard lock(shared_.mu);
  EXPECT_EQ(shared_.batch_rows, (std::vector<int64_t>{3}));  // one batch
}

TEST_F(SchedulerTest, DrainHereRunsEveryWaitingBatchOnTheCallingThread) {
  auto s = Make(1, 2, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the worker is asleep on an empty queue
  std::mutex mu;
  std::vector<std::thread::id> ran_on;
  for (int i = 0; i < 5; ++i) {
    auto r = MakeRequest("h" + std::to_string(i), 1, {});
    r->done = [&](InferenceResult&& result) {
      EXPECT_TRUE(result.status.ok()) << result.status.message();
      std::lock_guard lock(mu);
      ran_on.push_back(std::this_thread::get_id());
    };
    ASSERT_TRUE(s->Enqueue(r, Scheduler::EnqueueMode::kQueueOnly).ok());
  }
  s->DrainHere();
  std::lock_guard lock(mu);
  EXPECT_EQ(ran_on, std::vector<std::thread::id>(5, std::this_thread::get_id()));  // all done, all here
  std::lock_guard shared_lock(shared_.mu);
  EXPECT_EQ(shared_.batch_rows, (std::vector<int64_t>{2, 2, 1}));
}

}  // namespace
}  // namespace vigil
