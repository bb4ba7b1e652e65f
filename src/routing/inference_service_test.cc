#include "routing/inference_service.h"

#include <gtest/gtest.h>

#include <fstream>
#include <future>

#include "core/eventually.h"

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
  ASSERT_TRUE(Eventually([&] { return mv->scheduler().QueueDepth() == 1; }));
  // The queue holds one: the next call is refused.
  auto [full, none] = h.Start(Harness::Call("m", {5, 6})).get();
  EXPECT_NE(full.message().find("queue full"), std::string::npos) << full.message();
  // Cancelled: dropped at once (not when the window ends), never run.
  token.Cancel();
  auto [cancelled, r] = waiting.get();
  EXPECT_EQ(cancelled.code(), StatusCode::kUnavailable);
  EXPECT_NE(cancelled.message().find("cancelled by its client"), std::string::npos) << cancelled.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  EXPECT_EQ(mv->scheduler().QueueDepth(), 0u);
  // The slot is free again; a call whose deadline passes in the queue is not run.
  InferCall late = Harness::Call("m", {7, 8});
  late.deadline = SystemClock::Get()->Now() + std::chrono::milliseconds(50);
  auto [expired, e] = h.Start(std::move(late)).get();
  EXPECT_EQ(expired.code(), StatusCode::kDeadlineExceeded) << expired.message();
  EXPECT_EQ(mv->scheduler().Stats().execution_count, 0u);
}

}  // namespace
}  // namespace vigil
