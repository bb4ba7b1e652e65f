#include "routing/inference_service.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "core/eventually.h"
#include "repository/ensemble_run.h"

namespace vigil {
namespace {

namespace fs = std::filesystem;

// Doubles its input.
class FakeBackend final : public Backend {
 public:
  Status Execute(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override {
    Tensor y = inputs[0];
    y.name = "y";
    for (int64_t i = 0; i < y.element_count(); ++i) y.mutable_as<float>()[i] *= 2;
    outputs = {std::move(y)};
    return Status::Ok();
  }
};

struct Harness {
  fs::path root = fs::temp_directory_path() / ("vigil_service_test_" + std::to_string(::getpid()) + "_" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  MetricsRegistry registry;
  ServingMetrics metrics{registry};
  std::unique_ptr<ModelRepository> repository;
  std::unique_ptr<Deployments> deployments;
  std::unique_ptr<InferenceService> service;

  explicit Harness(const std::string& delay = "max_queue_delay_us: 100") {
    fs::remove_all(root);
    fs::create_directories(root / "m" / "1");
    std::ofstream(root / "m" / "config.yaml") << "backend: onnx\nmax_batch_size: 4\n"
                                                 "inputs: [{name: x, datatype: FP32, shape: [2]}]\n"
                                                 "outputs: [{name: y, datatype: FP32, shape: [2]}]\n"
                                                 "dynamic_batching: {max_queue_size: 1, "
                                              << delay
                                              << "}\n"
                                                 "monitoring: {enabled: false}\n";
    std::ofstream(root / "m" / "1" / "model.onnx") << "fake";
    ModelRepository::Options ro;
    ro.root = root;
    ro.backends = [](std::string_view, const BackendSpec&) -> StatusOr<std::unique_ptr<Backend>> {
      return std::unique_ptr<Backend>(new FakeBackend());
    };
    repository = std::move(ModelRepository::Create(ro)).value();
    repository->Poll();
    ModelCatalog catalog;
    catalog.check = [this](const std::string& model, int64_t version) {
      auto info = repository->Find(model, version);
      return info.ok() ? Status::Ok() : info.status();
    };
    Deployments::Options options;
    options.catalog = catalog;
    deployments = std::make_unique<Deployments>(std::move(options));
    EXPECT_TRUE(deployments->Apply("ep", "production: {model: m, version: 1}\n", {"test", "apply", ""}).ok());
    service = std::move(InferenceService::Create(*repository, {.metrics = &metrics, .deployments = deployments.get()}))
                  .value();
  }
  ~Harness() {
    service.reset();
    repository->StopAll();
    repository.reset();
    fs::remove_all(root);
  }
  static InferCall Call(const std::string& model, std::vector<float> values) {
    InferCall call;
    call.model = model;
    Tensor x;
    x.name = "x";
    x.datatype = DataType::kFp32;
    x.shape = {static_cast<int64_t>(values.size()) / 2, 2};
    x.data.resize(values.size() * sizeof(float));
    std::copy(values.begin(), values.end(), x.mutable_as<float>());
    call.inputs.push_back(std::move(x));
    return call;
  }
  // Starts a call; its outcome arrives in the future.
  std::future<std::pair<Status, InferReply>> Start(InferCall call) {
    auto promise = std::make_shared<std::promise<std::pair<Status, InferReply>>>();
    auto future = promise->get_future();
    service->Infer(std::move(call), [promise](const Status& s, InferReply&& r) {
      promise->set_value({s, std::move(r)});
    });
    return future;
  }
};

TEST(InferenceService, AModelOrAnEndpointAnswersWithTheVersionThatRan) {
  Harness h;
  auto [s, reply] = h.Start(Harness::Call("m", {1, 2})).get();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(reply.version, 1);
  EXPECT_EQ(reply.outputs[0].as<float>()[1], 4);
  auto [es, ereply] = h.Start(Harness::Call("ep", {3, 4})).get();
  ASSERT_TRUE(es.ok()) << es.message();
  EXPECT_EQ(std::get<std::string>(ereply.parameters["vigil.version"]), "1");
  // What frontends resolve: an endpoint stands for its production model.
  auto target = h.service->Resolve("ep", "");
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(target->model, "m");
  EXPECT_EQ(target->version, 1);
  EXPECT_EQ(h.service->Resolve("m", "x1").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(h.service->Find("nope", "").status().code(), StatusCode::kNotFound);
}

TEST(InferenceService, ACallIsCheckedAgainstTheConfigBeforeItIsQueued) {
  Harness h;
  InferCall wrong = Harness::Call("m", {1, 2, 3});  // 3 values do not fill rows of 2
  wrong.inputs[0].shape = {1, 3};
  auto [s, r] = h.Start(std::move(wrong)).get();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("input 'x' has shape [1, 3]; model 'm' expects [N] + [2]"), std::string::npos)
      << s.message();
  InferCall unknown_output = Harness::Call("m", {1, 2});
  unknown_output.outputs.push_back({"z"});
  auto [s2, r2] = h.Start(std::move(unknown_output)).get();
  EXPECT_NE(s2.message().find("has no output 'z' (outputs: y)"), std::string::npos) << s2.message();
}

TEST(InferenceService, ACancelOrADeadlineFreesTheQueueSlotAtOnce) {
  Harness h("max_queue_delay_us: 5000000");  // a 5 s batching window: calls wait in the queue
  auto mv = std::move(h.repository->Acquire("m", 1)).value();
  InferCall queued = Harness::Call("ep", {3, 4});  // by the endpoint's name
  queued.cancel = CancelToken::Create();
  const CancelToken token = queued.cancel;
  const auto start = std::chrono::steady_clock::now();
  auto waiting = h.Start(std::move(queued));
  ASSERT_TRUE(Eventually([&] { return mv->scheduler()->QueueDepth() == 1; }));
  // The queue holds one: the next call is refused.
  auto [full, none] = h.Start(Harness::Call("m", {5, 6})).get();
  EXPECT_NE(full.message().find("queue full"), std::string::npos) << full.message();
  // Cancelled: dropped at once (not when the window ends), never run.
  token.Cancel();
  auto [cancelled, r] = waiting.get();
  EXPECT_EQ(cancelled.code(), StatusCode::kUnavailable);
  EXPECT_NE(cancelled.message().find("cancelled by its client"), std::string::npos) << cancelled.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  EXPECT_EQ(mv->scheduler()->QueueDepth(), 0u);
  // The slot is free again; a call whose deadline passes in the queue is not run.
  InferCall late = Harness::Call("m", {7, 8});
  late.deadline = SystemClock::Get()->Now() + std::chrono::milliseconds(50);
  auto [expired, e] = h.Start(std::move(late)).get();
  EXPECT_EQ(expired.code(), StatusCode::kDeadlineExceeded) << expired.message();
  EXPECT_EQ(mv->scheduler()->Stats().execution_count, 0u);
}

// Multiplies its input by a factor and names its output as the config does.
class ScaleBackend final : public Backend {
 public:
  ScaleBackend(float factor, std::string output) : factor_(factor), output_(std::move(output)) {}
  Status Execute(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override {
    Tensor y = inputs[0];
    y.name = output_;
    for (int64_t i = 0; i < y.element_count(); ++i) y.mutable_as<float>()[i] *= factor_;
    outputs = {std::move(y)};
    return Status::Ok();
  }

 private:
  float factor_;
  std::string output_;
};

// A ×4 backend that computes only while its gate is open: a member still
// running when a test moves its fake clock past a deadline. Open while the
// repository loads (a load runs a warm-up call).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = true;
  int entered = 0;  // calls since the gate closed
  void Close() {
    std::lock_guard lock(mu);
    open = false;
    entered = 0;
  }
  void Open() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  int Entered() {
    std::lock_guard lock(mu);
    return entered;
  }
};

class GatedBackend final : public Backend {
 public:
  explicit GatedBackend(std::shared_ptr<Gate> gate) : gate_(std::move(gate)) {}
  Status Execute(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override {
    std::unique_lock lock(gate_->mu);
    ++gate_->entered;
    gate_->cv.wait(lock, [&] { return gate_->open; });
    Tensor y = inputs[0];
    y.name = "y";
    for (int64_t i = 0; i < y.element_count(); ++i) y.mutable_as<float>()[i] *= 4;
    outputs = {std::move(y)};
    return Status::Ok();
  }

 private:
  std::shared_ptr<Gate> gate_;
};

// Models "twice" and "thrice" (×2, ×3; thrice's output is "scores"), a
// "wide" one that takes [3] (no member of a [2] ensemble), "slow" (×4 once
// `gate` opens), and ensembles written by each test; time is `clock`.
struct EnsembleHarness {
  FakeClock clock;
  std::shared_ptr<Gate> gate = std::make_shared<Gate>();
  fs::path root = fs::temp_directory_path() / ("vigil_ensemble_test_" + std::to_string(::getpid()) + "_" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  MetricsRegistry registry;
  ServingMetrics metrics{registry};
  std::unique_ptr<ModelRepository> repository;
  Deployments deployments{Deployments::Options{}};
  std::unique_ptr<InferenceService> service;

  EnsembleHarness() {
    fs::remove_all(root);
    auto model = [&](const std::string& name, const std::string& width, const std::string& output) {
      fs::create_directories(root / name / "1");
      std::ofstream(root / name / "config.yaml") << "backend: onnx\nmax_batch_size: 8\n"
                                                 << "inputs: [{name: x, datatype: FP32, shape: [" << width << "]}]\n"
                                                 << "outputs: [{name: " << output << ", datatype: FP32, shape: ["
                                                 << width << "]}]\nmonitoring: {enabled: false}\n";
      std::ofstream(root / name / "1" / "model.onnx") << "fake";
    };
    model("twice", "2", "y");
    model("thrice", "2", "scores");
    model("wide", "3", "y");
    model("slow", "2", "y");
    ModelRepository::Options ro;
    ro.root = root;
    ro.metrics = &metrics;
    ro.clock = &clock;
    ro.backends = [gate = gate](std::string_view, const BackendSpec& spec) -> StatusOr<std::unique_ptr<Backend>> {
      if (spec.model_name == "slow") return std::unique_ptr<Backend>(new GatedBackend(gate));
      return std::unique_ptr<Backend>(
          new ScaleBackend(spec.model_name == "thrice" ? 3.f : 2.f, spec.outputs.at(0).name));
    };
    repository = std::move(ModelRepository::Create(ro)).value();
  }
  ~EnsembleHarness() {
    gate->Open();
    for (auto& t : callers) t.join();
    service.reset();
    repository->StopAll();
    repository.reset();
    fs::remove_all(root);
  }
  void Ensemble(const std::string& name, const std::string& members, const std::string& rest = "") {
    fs::create_directories(root / name / "1");
    std::ofstream(root / name / "config.yaml") << "backend: ensemble\nmax_batch_size: 8\n"
                                                  "inputs: [{name: x, datatype: FP32, shape: [2]}]\n"
                                                  "outputs: [{name: y, datatype: FP32, shape: [2]}]\n"
                                                  "monitoring: {enabled: false}\n"
                                                  "ensemble: {members: ["
                                               << members << "]" << rest << "}\n";
  }
  void Start() {
    repository->Poll();
    service = std::move(InferenceService::Create(*repository,
                                                 {.metrics = &metrics, .deployments = &deployments, .clock = &clock}))
                  .value();
  }
  // On a thread of its own: an idle member may run a request on the
  // caller's thread, and the slow one would hold the test's.
  std::future<std::pair<Status, InferReply>> Start(InferCall call) {
    auto promise = std::make_shared<std::promise<std::pair<Status, InferReply>>>();
    auto future = promise->get_future();
    callers.emplace_back([this, promise, call = std::move(call)]() mutable {
      service->Infer(std::move(call), [promise](const Status& s, InferReply&& r) {
        promise->set_value({s, std::move(r)});
      });
    });
    return future;
  }
  std::vector<std::thread> callers;
  std::pair<Status, InferReply> Infer(const std::string& model, std::vector<float> values) {
    return Start(Harness::Call(model, std::move(values))).get();
  }
  uint64_t Served(const std::string& model) {
    return std::move(repository->Acquire(model, 1)).value()->Stats().success_count;
  }
  std::string Row(const std::string& model) const {
    for (const auto& row : repository->Index()) {
      if (row.model == model) return std::string(VersionStateName(row.state)) + " " + row.reason;
    }
    return "missing";
  }
};

std::string Text(const InferReply& r, const std::string& key) {
  auto it = r.parameters.find(key);
  return it == r.parameters.end() ? "" : std::get<std::string>(it->second);
}

TEST(Ensemble, AnswersTheWeightedMeanOfItsMembersAndNamesThem) {
  EnsembleHarness h;
  h.Ensemble("ens", "{model: twice}, {model: thrice, output: scores, weight: 3}", ", combine: mean");
  h.Start();
  ASSERT_EQ(h.Row("ens"), "READY ");
  auto [s, reply] = h.Infer("ens", {1, 2, -1, 0.5});
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(reply.outputs.size(), 1u);
  const Tensor& y = reply.outputs[0];
  EXPECT_EQ(y.name, "y");
  EXPECT_EQ(y.shape, (std::vector<int64_t>{2, 2}));
  // (2x + 3 * 3x) / 4 = 2.75x
  const std::vector<float> want{2.75f, 5.5f, -2.75f, 1.375f};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(y.as<float>()[i], want[i], 1e-6) << i;
  EXPECT_EQ(Text(reply, "vigil.members"), "twice:1,thrice:1");
  EXPECT_EQ(Text(reply, "vigil.members_left_out"), "");
  EXPECT_EQ(reply.model, "ens");
  // Statistics as Triton's for a model; each member counts the rows it served.
  auto mv = std::move(h.repository->Acquire("ens", 1)).value();
  EXPECT_EQ(mv->scheduler(), nullptr);
  EXPECT_EQ(mv->Stats().success_count, 1u);
  EXPECT_EQ(mv->Stats().inference_count, 2u);
  EXPECT_EQ(mv->QueueDepth(), 0u);
  EXPECT_EQ(std::move(h.repository->Acquire("twice", 1)).value()->Stats().inference_count, 2u);
  const std::string text = h.registry.Expose();
  EXPECT_NE(text.find(R"(vigil_ensemble_answers_total{model="ens",version="1",members="2"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(vigil_inference_requests_total{model="ens",version="1"} 1)"), std::string::npos);
}

TEST(Ensemble, VoteAndMaxCombineAsConfigured) {
  EnsembleHarness h;
  h.Ensemble("vote", "{model: twice}, {model: thrice, output: scores, weight: 3}", ", combine: vote");
  h.Ensemble("top", "{model: twice}, {model: thrice, output: scores}", ", combine: max");
  h.Start();
  auto [vs, vote] = h.Infer("vote", {1, 2});  // both members vote for class 1
  ASSERT_TRUE(vs.ok()) << vs.message();
  EXPECT_FLOAT_EQ(vote.outputs[0].as<float>()[0], 0);
  EXPECT_FLOAT_EQ(vote.outputs[0].as<float>()[1], 1);
  auto [ms, top] = h.Infer("top", {1, -2});
  ASSERT_TRUE(ms.ok()) << ms.message();
  EXPECT_FLOAT_EQ(top.outputs[0].as<float>()[0], 3);   // max(2, 3)
  EXPECT_FLOAT_EQ(top.outputs[0].as<float>()[1], -4);  // max(-4, -6)
}

TEST(Ensemble, AMemberThatCannotAnswerIsLeftOutWhileMinMembersRemain) {
  EnsembleHarness h;
  h.Ensemble("lenient", "{model: twice}, {model: absent}", ", min_members: 1");
  h.Ensemble("strict", "{model: twice}, {model: absent}", ", min_members: 2");
  h.Start();
  auto [s, reply] = h.Infer("lenient", {1, 2});
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FLOAT_EQ(reply.outputs[0].as<float>()[1], 4);  // twice alone
  EXPECT_EQ(Text(reply, "vigil.members"), "twice:1");
  EXPECT_EQ(Text(reply, "vigil.members_left_out"), "absent:latest (not_ready)");

  auto [fs2, failed] = h.Infer("strict", {1, 2});
  EXPECT_EQ(fs2.code(), StatusCode::kUnavailable) << fs2.message();
  EXPECT_NE(fs2.message().find("ensemble 'strict' version 1: 1 of 2 members answered, min_members is 2: "
                               "absent:latest: unknown model 'absent'"),
            std::string::npos)
      << fs2.message();
  const std::string text = h.registry.Expose();
  EXPECT_NE(
      text.find(
          R"(vigil_ensemble_members_left_out_total{model="lenient",version="1",member="absent:latest",reason="not_ready"} 1)"),
      std::string::npos);
  EXPECT_NE(text.find(R"(vigil_ensemble_answers_total{model="lenient",version="1",members="1"} 1)"), std::string::npos);
  EXPECT_EQ(std::move(h.repository->Acquire("strict", 1)).value()->Stats().fail_count, 1u);
}

TEST(Ensemble, AMemberThatDoesNotFitIsNamedWhenTheEnsembleLoads) {
  EnsembleHarness h;
  h.Ensemble("misfit", "{model: twice}, {model: wide}");
  h.Ensemble("noout", "{model: thrice}");  // its output is 'scores', not the ensemble's 'y'
  h.Start();
  EXPECT_NE(h.Row("misfit").find("UNAVAILABLE model 'misfit': ensemble.members[1] ('wide') input 'x' is FP32 [3], "
                                 "the ensemble's FP32 [2]"),
            std::string::npos)
      << h.Row("misfit");
  EXPECT_NE(h.Row("noout").find("ensemble.members[0] ('thrice').output: 'y' is not an output of it (outputs: scores)"),
            std::string::npos)
      << h.Row("noout");
  EXPECT_EQ(h.Infer("misfit", {1, 2}).first.code(), StatusCode::kUnavailable);
}

TEST(Ensemble, AnEndpointServesAnEnsembleAndItsMembersPredictTheirWait) {
  EnsembleHarness h;
  h.Ensemble("ens", "{model: twice}, {model: thrice, output: scores}", ", min_members: 1");
  h.Start();
  ASSERT_TRUE(h.deployments.Apply("ep", "production: {model: ens}\n", {"test", "apply", ""}).ok());
  auto [s, reply] = h.Infer("ep", {1, 1});
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FLOAT_EQ(reply.outputs[0].as<float>()[0], 2.5f);
  EXPECT_EQ(Text(reply, "vigil.model"), "ens");
  EXPECT_EQ(Text(reply, "vigil.members"), "twice:1,thrice:1");
  auto wait = h.service->Predict("ens", 0, 0, 1);
  ASSERT_TRUE(wait);
  EXPECT_GE(wait->all, wait->enough);
  EXPECT_FALSE(h.service->Predict("absent", 0, 0, 1));
  EXPECT_EQ(h.service->Busy("ens", 0), false);
}

// Clipper's way: a member admitted in time that then overruns does not hold
// the answer past the deadline; the members that returned answer just
// before it, and the late one is named, counted and let go of.
TEST(Ensemble, AMemberStillRunningAtTheDeadlineIsLeftOutAndTheOthersAnswerInTime) {
  EnsembleHarness h;
  h.Ensemble("lenient", "{model: twice}, {model: slow}", ", min_members: 1");
  h.Ensemble("strict", "{model: twice}, {model: slow}", ", min_members: 2");
  h.Start();
  h.gate->Close();
  InferCall call = Harness::Call("lenient", {1, 2});
  call.deadline = h.clock.Now() + std::chrono::milliseconds(50);
  auto answer = h.Start(std::move(call));
  ASSERT_TRUE(Eventually([&] { return h.Served("twice") == 1 && h.gate->Entered() == 1; }));
  // Both members are in; time has not moved, so the answer waits for the slow one.
  EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  // A microsecond before the deadline less the margin: still waiting.
  h.clock.Advance(std::chrono::milliseconds(50) - kEnsembleAnswerMargin - std::chrono::microseconds(1));
  EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
  h.clock.Advance(std::chrono::microseconds(1));
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto [s, reply] = answer.get();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FLOAT_EQ(reply.outputs[0].as<float>()[1], 4);  // twice alone
  EXPECT_EQ(Text(reply, "vigil.members"), "twice:1");
  EXPECT_EQ(Text(reply, "vigil.members_left_out"), "slow:1 (late)");

  // min_members 2: at the deadline the request fails, and says which member was late.
  InferCall strict = Harness::Call("strict", {1, 2});
  strict.deadline = h.clock.Now() + std::chrono::milliseconds(50);
  auto failed = h.Start(std::move(strict));
  ASSERT_TRUE(Eventually([&] { return h.Served("twice") == 2; }));
  h.clock.Advance(std::chrono::milliseconds(50));
  ASSERT_EQ(failed.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto [fs2, none] = failed.get();
  EXPECT_EQ(fs2.code(), StatusCode::kDeadlineExceeded) << fs2.message();
  EXPECT_NE(fs2.message().find("1 of 2 members answered, min_members is 2: slow:1: did not answer before the "
                               "request's deadline"),
            std::string::npos)
      << fs2.message();

  // The slow member finishes later; its answers are let go of, nothing answers twice.
  h.gate->Open();
  ASSERT_TRUE(Eventually([&] { return h.Served("slow") >= 1; }));
  const std::string text = h.registry.Expose();
  EXPECT_NE(
      text.find(
          R"(vigil_ensemble_members_left_out_total{model="lenient",version="1",member="slow:1",reason="late"} 1)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(vigil_ensemble_answers_total{model="lenient",version="1",members="1"} 1)"), std::string::npos);
}

// Without a deadline an ensemble waits for every member: no timer is set.
TEST(Ensemble, WithoutADeadlineEveryMemberIsWaitedFor) {
  EnsembleHarness h;
  h.Ensemble("ens", "{model: twice}, {model: slow}", ", min_members: 1");
  h.Start();
  h.gate->Close();
  auto answer = h.Start(Harness::Call("ens", {1, 2}));
  ASSERT_TRUE(Eventually([&] { return h.Served("twice") == 1 && h.gate->Entered() == 1; }));
  h.clock.Advance(std::chrono::hours(1));
  EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(20)), std::future_status::timeout);
  h.gate->Open();
  auto [s, reply] = answer.get();
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FLOAT_EQ(reply.outputs[0].as<float>()[1], 6);  // (2x + 4x) / 2
  EXPECT_EQ(Text(reply, "vigil.members"), "twice:1,slow:1");
}

}  // namespace
}  // namespace vigil
