#include "repository/model_config.h"

#include <gtest/gtest.h>

#include <cmath>

namespace vigil {
namespace {

constexpr const char* kValid = R"(
backend: onnx
max_batch_size: 32
inputs:
  - {name: x, datatype: FP32, shape: [4]}
outputs:
  - {name: y, datatype: FP32, shape: [2]}
dynamic_batching:
  max_queue_delay_us: 500
  preferred_batch_sizes: [16, 4, 16]
  max_queue_size: 10
  default_timeout_us: 2000
instances: 2
version_policy: {latest: 2}
warmup: {batch_size: 64, iterations: 3}
)";

std::string ErrorOf(const std::string& yaml) {
  auto c = LoadModelConfig("m", yaml);
  return c.ok() ? "" : c.status().message();
}

TEST(ModelConfig, ParsesNormalisesAndValidates) {
  auto c = LoadModelConfig("m", kValid);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->name, "m");
  EXPECT_EQ(c->backend, BackendKind::kOnnx);
  EXPECT_EQ(c->max_batch_size, 32);
  ASSERT_EQ(c->inputs.size(), 1u);
  EXPECT_EQ(c->inputs[0].dims, (Shape{4}));
  EXPECT_EQ(c->dynamic_batching.preferred_batch_sizes, (std::vector<int64_t>{4, 16}));  // sorted, unique
  EXPECT_EQ(c->dynamic_batching.max_queue_delay_us, 500);
  EXPECT_EQ(c->instances, 2);
  EXPECT_EQ(c->version_policy.kind, VersionPolicy::Kind::kLatest);
  EXPECT_EQ(c->version_policy.latest, 2);
  EXPECT_TRUE(c->warmup.enabled);
  EXPECT_EQ(c->warmup.batch_size, 32);  // clamped to max_batch_size
  EXPECT_EQ(c->InputIndex("x"), 0);
  EXPECT_EQ(c->OutputIndex("nope"), -1);
}

TEST(ModelConfig, DefaultsWhenOptionalFieldsAreAbsent) {
  auto c = LoadModelConfig("m",
                           "backend: torchscript\ninputs: [{name: a, datatype: INT64, shape: [-1]}]\n"
                           "outputs: [{name: b, datatype: FP32, shape: [1]}]\n");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->max_batch_size, 0);
  EXPECT_EQ(c->instances, 1);
  EXPECT_EQ(c->version_policy.kind, VersionPolicy::Kind::kLatest);
  EXPECT_EQ(c->version_policy.latest, 1);
  EXPECT_FALSE(c->warmup.enabled);
}

TEST(ModelConfig, VersionPolicyForms) {
  const std::string base =
      "backend: onnx\ninputs: [{name: a, datatype: FP32, shape: [1]}]\n"
      "outputs: [{name: b, datatype: FP32, shape: [1]}]\n";
  auto all = LoadModelConfig("m", base + "version_policy: all\n");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->version_policy.kind, VersionPolicy::Kind::kAll);
  auto specific = LoadModelConfig("m", base + "version_policy: {specific: [3, 1]}\n");
  ASSERT_TRUE(specific.ok());
  EXPECT_EQ(specific->version_policy.specific, (std::vector<int64_t>{1, 3}));
  EXPECT_NE(ErrorOf(base + "version_policy: newest\n").find("version_policy"), std::string::npos);
  EXPECT_NE(ErrorOf(base + "version_policy: {latest: 0}\n").find("version_policy.latest"), std::string::npos);
}

TEST(ModelConfig, UnknownKeyIsAnErrorNamingTheField) {
  const std::string e = ErrorOf(std::string(kValid) + "max_batch: 3\n");
  EXPECT_NE(e.find("model 'm'"), std::string::npos) << e;
  EXPECT_NE(e.find("'max_batch'"), std::string::npos) << e;
  EXPECT_NE(e.find("no such key"), std::string::npos) << e;
  const std::string nested = ErrorOf(
      "backend: onnx\ninputs: [{name: a, datatype: FP32, shape: [1]}]\noutputs: [{name: b, datatype: FP32, shape: "
      "[1]}]\n"
      "dynamic_batching: {max_delay: 3}\n");
  EXPECT_NE(nested.find("dynamic_batching.max_delay"), std::string::npos) << nested;
}

TEST(ModelConfig, DuplicateKeyIsAnError) {
  const std::string e = ErrorOf(std::string(kValid) + "instances: 3\n");
  EXPECT_NE(e.find("'instances'"), std::string::npos) << e;
  EXPECT_NE(e.find("twice"), std::string::npos) << e;
}

TEST(ModelConfig, MonitoringBlockNamesFeaturesAndSetsThresholds) {
  auto c = LoadModelConfig("m", std::string(kValid) + R"(monitoring:
  features:
    - {name: age, index: 0}
    - {name: plan, index: 3, type: categorical}
  window_rows: 2000
  window_seconds: 30
  numeric_method: wasserstein
  numeric_threshold: 0.1
  alert_after: 2
)");
  ASSERT_TRUE(c.ok()) << c.status().message();
  const MonitoringConfig& m = c->monitoring;
  EXPECT_TRUE(m.enabled);
  ASSERT_EQ(m.features.size(), 2u);
  EXPECT_EQ(m.features[1].name, "plan");
  EXPECT_EQ(m.features[1].index, 3);
  EXPECT_EQ(m.features[1].type, FeatureType::kCategorical);
  EXPECT_EQ(m.window_rows, 2000);
  EXPECT_EQ(m.window_seconds, 30);
  EXPECT_EQ(m.numeric_method, "wasserstein");
  EXPECT_EQ(m.alert_after, 2);
  EXPECT_EQ(m.min_window_rows, 500);               // a default
  EXPECT_DOUBLE_EQ(m.health.latency_p99_ms, 1.6);  // 80% of default_timeout_us (2000 µs)
  EXPECT_DOUBLE_EQ(m.health.error_rate, 0.05);
  EXPECT_FALSE(m.quality);
  auto health = LoadModelConfig("m", std::string(kValid) +
                                         "monitoring: {health: {error_rate: 0.01, min_requests: 5}, "
                                         "quality: {metric: auc, drop: 0.05}}\n");
  ASSERT_TRUE(health.ok()) << health.status().message();
  EXPECT_DOUBLE_EQ(health->monitoring.health.error_rate, 0.01);
  EXPECT_EQ(health->monitoring.health.min_requests, 5);
  ASSERT_TRUE(health->monitoring.quality);
  EXPECT_EQ(health->monitoring.quality->metric, "auc");
  EXPECT_DOUBLE_EQ(health->monitoring.quality->drop, 0.05);
  EXPECT_TRUE(std::isnan(health->monitoring.quality->below));
  EXPECT_DOUBLE_EQ(health->monitoring.quality->Limit(0.97), 0.92);
  EXPECT_TRUE(std::isnan(health->monitoring.quality->Limit(std::nullopt)));
  auto off = LoadModelConfig("m", std::string(kValid) + "monitoring: false\n");
  ASSERT_TRUE(off.ok()) << off.status().message();
  EXPECT_FALSE(off->monitoring.enabled);
}

TEST(ModelConfig, ErrorsNameModelFieldAndExpectation) {
  const std::string io =
      "inputs: [{name: a, datatype: FP32, shape: [1]}]\noutputs: [{name: b, datatype: FP32, shape: [1]}]\n";
  struct Case {
    std::string yaml;
    std::string field;
  } cases[] = {
      {io, "'backend'"},
      {"backend: tensorflow\n" + io, "'backend'"},
      {"backend: onnx\nmax_batch_size: -1\n" + io, "'max_batch_size'"},
      {"backend: onnx\nmax_batch_size: lots\n" + io, "'max_batch_size'"},
      {"backend: onnx\ninputs: [{name: a, datatype: FLOAT, shape: [1]}]\noutputs: [{name: b, datatype: FP32, shape: "
       "[1]}]\n",
       "'inputs[0].datatype'"},
      {"backend: onnx\ninputs: [{name: a, datatype: FP32, shape: [0]}]\noutputs: [{name: b, datatype: FP32, shape: "
       "[1]}]\n",
       "'inputs[0].shape[0]'"},
      {"backend: onnx\ninputs: [{name: a, datatype: FP64, shape: [1]}]\noutputs: [{name: b, datatype: FP32, shape: "
       "[1]}]\n",
       "'inputs[0].datatype'"},
      {"backend: onnx\ninputs: [{name: a, datatype: FP32, shape: [1]}, {name: a, datatype: FP32, shape: [1]}]\n"
       "outputs: [{name: b, datatype: FP32, shape: [1]}]\n",
       "'inputs[1].name'"},
      {"backend: onnx\nmax_batch_size: 8\ndynamic_batching: {preferred_batch_sizes: [16]}\n" + io,
       "'dynamic_batching.preferred_batch_sizes'"},
      {"backend: onnx\ndynamic_batching: {max_queue_size: 0}\n" + io, "'dynamic_batching.max_queue_size'"},
      {"backend: onnx\ninstances: 0\n" + io, "'instances'"},
      {"backend: xgboost\n" + io, "'max_batch_size'"},
      {"backend: onnx\noutputs: [{name: b, datatype: FP32, shape: [1]}]\n", "'inputs'"},
      {"backend: onnx\ninputs: {name: a}\noutputs: [{name: b, datatype: FP32, shape: [1]}]\n", "'inputs'"},
      {"backend: onnx\nname: other\n" + io, "'name'"},
      {"backend: onnx\nmonitoring: {windows: 3}\n" + io, "'monitoring.windows'"},
      {"backend: onnx\nmonitoring: {features: [{name: a, index: 1}]}\n" + io, "'monitoring.features[0].index'"},
      {"backend: onnx\nmonitoring: {features: [{name: a, type: text}]}\n" + io, "'monitoring.features[0].type'"},
      {"backend: onnx\nmonitoring: {features: [{name: a}, {name: a, index: 0}]}\n" + io,
       "'monitoring.features[1].name'"},
      {"backend: onnx\nmonitoring: {numeric_method: t}\n" + io, "'monitoring.numeric_method'"},
      {"backend: onnx\nmonitoring: {window_rows: 100, min_window_rows: 500}\n" + io, "'monitoring.min_window_rows'"},
      {"backend: onnx\nmonitoring: {bins: 1}\n" + io, "'monitoring.bins'"},
      {"backend: onnx\nmonitoring: {quality: {metric: accuracy}}\n" + io, "'monitoring.quality'"},
      {"backend: onnx\nmonitoring: {quality: {drop: -1}}\n" + io, "'monitoring.quality.drop'"},
      {"backend: onnx\nmonitoring: {nonfinite_spike: 0.5}\n" + io, "'monitoring.nonfinite_spike'"},
      {"backend: onnx\nmonitoring: {out_of_range_rate: 0}\n" + io, "'monitoring.out_of_range_rate'"},
      {"backend: onnx\nmonitoring: {health: {error_rate: 2}}\n" + io, "'monitoring.health.error_rate'"},
      {"backend: onnx\nmonitoring: {health: {latency_p99_ms: -1}}\n" + io, "'monitoring.health.latency_p99_ms'"},
      {"backend: onnx\nmonitoring: {health: {queue_saturation: 0}}\n" + io, "'monitoring.health.queue_saturation'"},
      {"backend: onnx\nmonitoring: {health: {p50: 3}}\n" + io, "'monitoring.health.p50'"},
      {"backend: onnx\nmonitoring: {quality: {metric: speed, below: 1}}\n" + io, "'monitoring.quality.metric'"},
  };
  for (const auto& c : cases) {
    const std::string e = ErrorOf(c.yaml);
    EXPECT_NE(e.find("model 'm'"), std::string::npos) << c.yaml << " -> " << e;
    EXPECT_NE(e.find(c.field), std::string::npos) << c.yaml << " -> " << e;
    EXPECT_NE(e.find("expected"), std::string::npos) << c.yaml << " -> " << e;
  }
}

TEST(ModelConfig, MalformedYamlIsAnError) {
  const std::string e = ErrorOf("backend: [onnx\n");
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
}

TEST(ModelConfig, TritonStyleInstanceCount) {
  auto c = LoadModelConfig("m",
                           "backend: onnx\ninstances: {count: 3}\ninputs: [{name: a, datatype: FP32, shape: [1]}]\n"
                           "outputs: [{name: b, datatype: FP32, shape: [1]}]\n");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->instances, 3);
  EXPECT_DOUBLE_EQ(c->monitoring.health.latency_p99_ms, 1000);  // no default timeout: 1 s
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// Issue 11: every duration and count in a config is range-checked, so none
// can overflow the arithmetic done on it (crash 1 came in through the load
// route's config override with a window of 2^61 seconds).
TEST(ModelConfig, DurationsAndCountsAreRangeChecked) {
  const std::string base = R"(
backend: onnx
max_batch_size: 8
inputs: [{name: x, datatype: FP32, shape: [4]}]
outputs: [{name: y, datatype: FP32, shape: [2]}]
)";
  struct Case {
    std::string extra, field;
  };
  const std::vector<Case> cases = {
      {"monitoring: {quality: {metric: accuracy, below: 0.8, window_s: 2305843009213693952, min_labels: 1}}",
       "monitoring.quality.window_s"},
      {"dynamic_batching: {max_queue_delay_us: 9223372036854775807}", "dynamic_batching.max_queue_delay_us"},
      {"dynamic_batching: {default_timeout_us: 10000000000000000}", "dynamic_batching.default_timeout_us"},
      {"dynamic_batching: {max_queue_size: 100000000000}", "dynamic_batching.max_queue_size"},
      {"monitoring: {window_seconds: 1e300}", "monitoring.window_seconds"},
      {"monitoring: {reference_rows: 100000000000}", "monitoring.reference_rows"},
      {"monitoring: {window_rows: 100000000000}", "monitoring.window_rows"},
      {"monitoring: {alert_after: 1000000}", "monitoring.alert_after"},
      {"version_policy: {latest: 9223372036854775807}", "version_policy.latest"},
      {"warmup: {iterations: 9223372036854775807}", "warmup.iterations"},
  };
  for (const auto& c : cases) {
    const std::string e = ErrorOf(base + c.extra + "\n");
    EXPECT_NE(e.find("'" + c.field), std::string::npos) << c.extra << "\n" << e;
  }
  EXPECT_NE(ErrorOf(std::string(base).replace(base.find("max_batch_size: 8"), 17, "max_batch_size: 99999999999"))
                .find("'max_batch_size'"),
            std::string::npos);
  // A row of 2^40 x 2^40 elements overflowed the width computed from it.
  EXPECT_NE(ErrorOf(std::string(base).replace(base.find("shape: [4]"), 10, "shape: [1099511627776, 1099511627776]"))
                .find("'inputs[0].shape'"),
            std::string::npos);
}

// `backend_options:`: only the keys the backend reads, each range-checked;
// a version's backend_options.yaml overrides the model's.
TEST(ModelConfig, BackendOptionsApplyToTheirBackendAndAreChecked) {
  const std::string torch =
      "backend: torchscript\nmax_batch_size: 8\ninputs: [{name: x, datatype: FP32, shape: [4]}]\n"
      "outputs: [{name: y, datatype: FP32, shape: [2]}]\n";
  auto c = LoadModelConfig("m", torch + "backend_options: {optimize: freeze, intra_op_threads: 2}\n");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->backend_options.optimize, BackendOptions::TorchOptimize::kFreeze);
  EXPECT_EQ(c->backend_options.intra_op_threads, 2);
  EXPECT_EQ(DescribeBackendOptions(c->backend_options), "optimize: freeze, intra_op_threads: 2");
  EXPECT_EQ(DescribeBackendOptions(BackendOptions{}), "");

  auto own = LoadVersionBackendOptions(*c, "optimize: optimize_for_inference\n");
  ASSERT_TRUE(own.ok()) << own.status().message();
  EXPECT_EQ(own->optimize, BackendOptions::TorchOptimize::kOptimizeForInference);
  EXPECT_EQ(own->intra_op_threads, 2) << "what the version does not say comes from the model";
  EXPECT_EQ(LoadVersionBackendOptions(*c, "").value(), c->backend_options);

  struct Case {
    std::string yaml, want;
  };
  const std::vector<Case> cases = {
      {torch + "backend_options: {fusion: false}\n", "config field 'backend_options.fusion': expected no such key (known: intra_op_threads, optimize)"},
      {torch + "backend_options: {optimize: fast}\n",
       "'backend_options.optimize': expected none, freeze or optimize_for_inference, got 'fast'"},
      {torch + "backend_options: {intra_op_threads: 0}\n",
       "'backend_options.intra_op_threads': expected from 1 to 256, got 0"},
      {torch + "backend_options: [1]\n", "'backend_options'"},
      {std::string(kValid) + "backend_options: {dnn_target: tpu}\n",
       "'backend_options.dnn_target': expected one of cpu, cuda, cuda_fp16"},
      {std::string(kValid) + "backend_options: {iteration_end: 3}\n", "'backend_options.iteration_end'"},
  };
  for (const auto& k : cases) {
    const std::string e = ErrorOf(k.yaml);
    EXPECT_NE(e.find(k.want), std::string::npos) << k.yaml << "\n  got: " << e;
  }
  EXPECT_NE(LoadVersionBackendOptions(*c, "intra_op_threads: 100000\n").status().message().find(
                "model 'm': config field 'backend_options.yaml.intra_op_threads': expected from 1 to 256"),
            std::string::npos);
  EXPECT_NE(LoadVersionBackendOptions(*c, "fusion: true\n").status().message().find("backend_options.yaml"),
            std::string::npos);
  EXPECT_NE(LoadVersionBackendOptions(*c, "{{{\n").status().message().find("not valid YAML"), std::string::npos);
}

}  // namespace
}  // namespace vigil
