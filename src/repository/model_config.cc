#include "repository/model_config.h"

#include "core/yaml_fields.h"
#include "monitoring/rule_fields.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace vigil {
namespace {

// The ranges a config may ask for: wide enough for any real model, narrow
// enough that no config can make the server allocate, wait or count without
// bound (or overflow the arithmetic on these numbers).
constexpr int64_t kMaxBatchSize = 1 << 20;
constexpr size_t kMaxModelTensors = 64;
constexpr int64_t kMaxRowElements = int64_t{1} << 28;
constexpr int64_t kMaxQueueDelayUs = 60'000'000;  // a minute
constexpr int64_t kMaxQueueSize = 1'000'000;
constexpr int64_t kMaxDefaultTimeoutUs = 86'400'000'000;  // a day
constexpr int64_t kMaxInstances = 64;
constexpr int64_t kMaxVersions = 10'000;
constexpr size_t kMaxMonitoredFeatures = 10'000;
constexpr int64_t kMaxReferenceRows = 10'000'000;
constexpr double kMaxWindowSeconds = 7 * 86400;  // a week
constexpr int64_t kMaxAlertWindows = 1000;
constexpr int64_t kMaxCount = 1'000'000'000;
constexpr size_t kMaxEnsembleMembers = 16;
constexpr double kMaxEnsembleWeight = 1e6;
constexpr int64_t kMaxIntraOpThreads = 256;
constexpr int64_t kMaxTrees = 1'000'000;

void ReadEnsemble(const YAML::Node& e, EnsembleConfig& c) {
  RequireMap(e, "ensemble", {"members", "combine", "min_members"});
  const YAML::Node ms = e["members"];
  if (!ms || !ms.IsSequence()) throw ConfigError{"ensemble.members", "a list of {model, version, output, weight}"};
  RequireListSize(ms, "ensemble.members", kMaxEnsembleMembers);
  for (size_t i = 0; i < ms.size(); ++i) {
    const std::string f = "ensemble.members[" + std::to_string(i) + "]";
    RequireMap(ms[i], f, {"model", "version", "output", "weight"});
    EnsembleMember m;
    if (!ms[i]["model"]) throw ConfigError{f + ".model", "the name of a model in the repository"};
    m.model = ReadString(ms[i]["model"], f + ".model");
    if (ms[i]["version"]) m.version = ReadInt(ms[i]["version"], f + ".version");
    if (ms[i]["output"]) m.output = ReadString(ms[i]["output"], f + ".output");
    if (ms[i]["weight"]) m.weight = ReadDouble(ms[i]["weight"], f + ".weight");
    c.members.push_back(std::move(m));
  }
  if (e["combine"]) {
    c.combine = ReadChoice<EnsembleCombine>(
        e["combine"], "ensemble.combine",
        {{"mean", EnsembleCombine::kMean}, {"vote", EnsembleCombine::kVote}, {"max", EnsembleCombine::kMax}});
  }
  if (e["min_members"]) c.min_members = ReadInt(e["min_members"], "ensemble.min_members");
}

// `backend_options:` (or a version's backend_options.yaml) over `o`: only
// the keys that apply to `backend`.
void ReadBackendOptions(const YAML::Node& n, const std::string& field, BackendKind backend, BackendOptions& o) {
  switch (backend) {
    case BackendKind::kTorchScript:
      RequireMap(n, field, {"intra_op_threads", "optimize"});
      break;
    case BackendKind::kOnnx:
      RequireMap(n, field, {"dnn_backend", "dnn_target", "fusion"});
      break;
    case BackendKind::kXgboost:
      RequireMap(n, field, {"intra_op_threads", "iteration_end", "inplace"});
      break;
    case BackendKind::kEnsemble:
      throw ConfigError{field, "no backend options for an ensemble (its members have their own)"};
  }
  const std::string prefix = field.empty() ? "" : field + ".";
  if (n["intra_op_threads"]) o.intra_op_threads = ReadInt(n["intra_op_threads"], prefix + "intra_op_threads");
  if (n["optimize"]) {
    using T = BackendOptions::TorchOptimize;
    o.optimize = ReadChoice<T>(
        n["optimize"], prefix + "optimize",
        {{"none", T::kNone}, {"freeze", T::kFreeze}, {"optimize_for_inference", T::kOptimizeForInference}});
  }
  if (n["dnn_backend"]) o.dnn_backend = ReadString(n["dnn_backend"], prefix + "dnn_backend");
  if (n["dnn_target"]) o.dnn_target = ReadString(n["dnn_target"], prefix + "dnn_target");
  if (n["fusion"]) o.fusion = ReadBool(n["fusion"], prefix + "fusion");
  if (n["iteration_end"]) o.iteration_end = ReadInt(n["iteration_end"], prefix + "iteration_end");
  if (n["inplace"]) o.inplace = ReadBool(n["inplace"], prefix + "inplace");
}

std::vector<TensorSpec> ReadTensors(const YAML::Node& node, const std::string& field) {
  if (!node.IsSequence()) throw ConfigError{field, "a list of {name, datatype, shape}, got " + Describe(node)};
  RequireListSize(node, field, kMaxModelTensors);
  std::vector<TensorSpec> out;
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string f = field + "[" + std::to_string(i) + "]";
    const YAML::Node& t = node[i];
    RequireMap(t, f, {"name", "datatype", "shape"});
    TensorSpec spec;
    if (!t["name"]) throw ConfigError{f + ".name", "a tensor name"};
    spec.name = ReadString(t["name"], f + ".name");
    if (!t["datatype"]) throw ConfigError{f + ".datatype", "a datatype such as FP32"};
    const std::string dt = ReadString(t["datatype"], f + ".datatype");
    spec.datatype = ParseDataType(dt);
    if (spec.datatype == DataType::kInvalid) {
      throw ConfigError{f + ".datatype",
                        "one of BOOL, UINT8..UINT64, INT8..INT64, FP16, BF16, FP32, FP64, BYTES, got '" + dt + "'"};
    }
    if (!t["shape"]) throw ConfigError{f + ".shape", "a list of dimensions such as [30]"};
    spec.dims = ReadIntList(t["shape"], f + ".shape", kMaxTensorRank);
    out.push_back(std::move(spec));
  }
  return out;
}

void ReadMonitoring(const YAML::Node& m, MonitoringConfig& c) {
  if (m.IsScalar()) {
    c.enabled = ReadBool(m, "monitoring");
    return;
  }
  RequireMap(m, "monitoring",
             {"enabled", "features", "reference_rows", "window_rows", "window_seconds", "min_window_rows", "bins",
              "numeric_method", "numeric_threshold", "categorical_method", "categorical_threshold", "drift_share",
              "alert_after", "resolve_after", "quality", "nonfinite_spike", "out_of_range_rate", "health"});
  if (m["enabled"]) c.enabled = ReadBool(m["enabled"], "monitoring.enabled");
  if (const YAML::Node fs = m["features"]) {
    if (!fs.IsSequence())
      throw ConfigError{"monitoring.features", "a list of {name, index, type}, got " + Describe(fs)};
    RequireListSize(fs, "monitoring.features", kMaxMonitoredFeatures);
    for (size_t i = 0; i < fs.size(); ++i) {
      const std::string f = "monitoring.features[" + std::to_string(i) + "]";
      RequireMap(fs[i], f, {"name", "index", "type"});
      FeatureSpec spec;
      if (!fs[i]["name"]) throw ConfigError{f + ".name", "the feature's name"};
      spec.name = ReadString(fs[i]["name"], f + ".name");
      spec.index = fs[i]["index"] ? ReadInt(fs[i]["index"], f + ".index") : static_cast<int64_t>(i);
      if (fs[i]["type"]) {
        const std::string type = ReadString(fs[i]["type"], f + ".type");
        if (type == "categorical") {
          spec.type = FeatureType::kCategorical;
        } else if (type != "numeric") {
          throw ConfigError{f + ".type", "numeric or categorical, got '" + type + "'"};
        }
      }
      c.features.push_back(std::move(spec));
    }
  }
  if (m["reference_rows"]) c.reference_rows = ReadInt(m["reference_rows"], "monitoring.reference_rows");
  if (m["window_rows"]) c.window_rows = ReadInt(m["window_rows"], "monitoring.window_rows");
  if (m["window_seconds"]) c.window_seconds = ReadDouble(m["window_seconds"], "monitoring.window_seconds");
  if (m["min_window_rows"]) c.min_window_rows = ReadInt(m["min_window_rows"], "monitoring.min_window_rows");
  if (m["bins"]) c.bins = ReadInt(m["bins"], "monitoring.bins");
  if (m["numeric_method"]) c.numeric_method = ReadString(m["numeric_method"], "monitoring.numeric_method");
  if (m["numeric_threshold"]) c.numeric_threshold = ReadDouble(m["numeric_threshold"], "monitoring.numeric_threshold");
  if (m["categorical_method"])
    c.categorical_method = ReadString(m["categorical_method"], "monitoring.categorical_method");
  if (m["categorical_threshold"])
    c.categorical_threshold = ReadDouble(m["categorical_threshold"], "monitoring.categorical_threshold");
  if (m["drift_share"]) c.drift_share = ReadDouble(m["drift_share"], "monitoring.drift_share");
  if (m["alert_after"]) c.alert_after = ReadInt(m["alert_after"], "monitoring.alert_after");
  if (m["resolve_after"]) c.resolve_after = ReadInt(m["resolve_after"], "monitoring.resolve_after");
  if (m["quality"]) c.quality = ReadQualityRule(m["quality"], "monitoring.quality");
  if (m["nonfinite_spike"]) c.nonfinite_spike = ReadDouble(m["nonfinite_spike"], "monitoring.nonfinite_spike");
  if (m["out_of_range_rate"]) c.out_of_range_rate = ReadDouble(m["out_of_range_rate"], "monitoring.out_of_range_rate");
  if (m["health"]) c.health = ReadHealthLimits(m["health"], "monitoring.health", true);
}

ModelConfig ParseTree(const std::string& model_name, const YAML::Node& root) {
  ModelConfig c;
  c.name = model_name;
  RequireMap(root, "",
             {"backend", "max_batch_size", "inputs", "outputs", "dynamic_batching", "instances", "version_policy",
              "warmup", "name", "monitoring", "ensemble", "backend_options"});
  if (root["name"]) {
    const std::string n = ReadString(root["name"], "name");
    if (n != model_name) throw ConfigError{"name", "the folder name '" + model_name + "', got '" + n + "'"};
  }
  if (!root["backend"]) throw ConfigError{"backend", "one of onnx, torchscript, xgboost, ensemble"};
  const std::string backend = ReadString(root["backend"], "backend");
  if (backend == "onnx") {
    c.backend = BackendKind::kOnnx;
  } else if (backend == "torchscript" || backend == "pytorch") {
    c.backend = BackendKind::kTorchScript;
  } else if (backend == "xgboost") {
    c.backend = BackendKind::kXgboost;
  } else if (backend == "ensemble") {
    c.backend = BackendKind::kEnsemble;
  } else {
    throw ConfigError{"backend", "one of onnx, torchscript, xgboost, ensemble, got '" + backend + "'"};
  }
  if (root["max_batch_size"]) c.max_batch_size = ReadInt(root["max_batch_size"], "max_batch_size");
  if (!root["inputs"]) throw ConfigError{"inputs", "a list of input tensors"};
  c.inputs = ReadTensors(root["inputs"], "inputs");
  if (!root["outputs"]) throw ConfigError{"outputs", "a list of output tensors"};
  c.outputs = ReadTensors(root["outputs"], "outputs");
  if (const YAML::Node db = root["dynamic_batching"]) {
    RequireMap(db, "dynamic_batching",
               {"max_queue_delay_us", "preferred_batch_sizes", "max_queue_size", "default_timeout_us"});
    auto& d = c.dynamic_batching;
    if (db["max_queue_delay_us"])
      d.max_queue_delay_us = ReadInt(db["max_queue_delay_us"], "dynamic_batching.max_queue_delay_us");
    if (db["preferred_batch_sizes"])
      d.preferred_batch_sizes = ReadIntList(db["preferred_batch_sizes"], "dynamic_batching.preferred_batch_sizes", 64);
    if (db["max_queue_size"]) d.max_queue_size = ReadInt(db["max_queue_size"], "dynamic_batching.max_queue_size");
    if (db["default_timeout_us"])
      d.default_timeout_us = ReadInt(db["default_timeout_us"], "dynamic_batching.default_timeout_us");
  }
  if (root["instances"]) {
    const YAML::Node inst = root["instances"];
    if (inst.IsMap()) {  // Triton-style {count: N}
      RequireMap(inst, "instances", {"count"});
      c.instances = ReadInt(inst["count"], "instances.count");
    } else {
      c.instances = ReadInt(inst, "instances");
    }
  }
  if (const YAML::Node vp = root["version_policy"]) {
    if (vp.IsScalar() && vp.Scalar() == "all") {
      c.version_policy.kind = VersionPolicy::Kind::kAll;
    } else if (vp.IsMap()) {
      RequireMap(vp, "version_policy", {"latest", "all", "specific"});
      if (vp.size() != 1) throw ConfigError{"version_policy", "exactly one of latest: N, all, specific: [..]"};
      if (vp["latest"]) {
        c.version_policy.kind = VersionPolicy::Kind::kLatest;
        c.version_policy.latest = ReadInt(vp["latest"], "version_policy.latest");
      } else if (vp["all"]) {
        c.version_policy.kind = VersionPolicy::Kind::kAll;
      } else {
        c.version_policy.kind = VersionPolicy::Kind::kSpecific;
        c.version_policy.specific = ReadIntList(vp["specific"], "version_policy.specific", kMaxVersions);
      }
    } else {
      throw ConfigError{"version_policy", "'all', {latest: N} or {specific: [..]}, got " + Describe(vp)};
    }
  }
  if (const YAML::Node w = root["warmup"]) {
    if (w.IsScalar()) {
      c.warmup.enabled = ReadBool(w, "warmup");
    } else {
      RequireMap(w, "warmup", {"batch_size", "iterations"});
      c.warmup.enabled = true;
      if (w["batch_size"]) c.warmup.batch_size = ReadInt(w["batch_size"], "warmup.batch_size");
      if (w["iterations"]) c.warmup.iterations = ReadInt(w["iterations"], "warmup.iterations");
    }
  }
  if (const YAML::Node m = root["monitoring"]) ReadMonitoring(m, c.monitoring);
  if (const YAML::Node bo = root["backend_options"])
    ReadBackendOptions(bo, "backend_options", c.backend, c.backend_options);
  if (const YAML::Node e = root["ensemble"]) {
    if (c.backend != BackendKind::kEnsemble)
      throw ConfigError{"ensemble", "no ensemble block unless backend: ensemble"};
    ReadEnsemble(e, c.ensemble);
  } else if (c.backend == BackendKind::kEnsemble) {
    throw ConfigError{"ensemble", "an ensemble block {members: [...], combine, min_members} for backend: ensemble"};
  }
  return c;
}

Status FieldError(const ModelConfig& c, const std::string& field, const std::string& expected) {
  return InvalidArgument("model '" + c.name + "': config field '" + field + "': expected " + expected);
}

Status InRange(const ModelConfig& c, const std::string& field, int64_t v, int64_t min, int64_t max) {
  if (v >= min && v <= max) return Status::Ok();
  return FieldError(
      c, field, "an integer from " + std::to_string(min) + " to " + std::to_string(max) + ", got " + std::to_string(v));
}

Status ValidateMonitoring(const ModelConfig& c) {
  const MonitoringConfig& m = c.monitoring;
  int64_t width = 1;  // values per row of the first input
  for (int64_t d : c.inputs.empty() ? std::vector<int64_t>{} : c.inputs[0].dims) width = d > 0 ? width * d : -1;
  std::set<std::string> names;
  for (size_t i = 0; i < m.features.size(); ++i) {
    const std::string f = "monitoring.features[" + std::to_string(i) + "]";
    const FeatureSpec& s = m.features[i];
    if (s.name.empty()) return FieldError(c, f + ".name", "a non-empty name");
    if (!names.insert(s.name).second)
      return FieldError(c, f + ".name", "a unique name, '" + s.name + "' appears twice");
    if (s.index < 0 || (width > 0 && s.index >= width)) {
      return FieldError(
          c, f + ".index",
          "a column of the first input (0 to " + std::to_string(width - 1) + "), got " + std::to_string(s.index));
    }
  }
  if (width < 0 && !m.features.empty()) {
    for (size_t i = 0; i < m.features.size(); ++i) {
      if (m.features[i].index >= kMaxRowElements) {
        return FieldError(c, "monitoring.features[" + std::to_string(i) + "].index",
                          "a column below " + std::to_string(kMaxRowElements));
      }
    }
  }
  VIGIL_RETURN_IF_ERROR(InRange(c, "monitoring.reference_rows", m.reference_rows, 1, kMaxReferenceRows));
  VIGIL_RETURN_IF_ERROR(InRange(c, "monitoring.window_rows", m.window_rows, 1, kMaxCount));
  VIGIL_RETURN_IF_ERROR(InRange(c, "monitoring.min_window_rows", m.min_window_rows, 1, kMaxCount));
  VIGIL_RETURN_IF_ERROR(InRange(c, "monitoring.alert_after", m.alert_after, 1, kMaxAlertWindows));
  VIGIL_RETURN_IF_ERROR(InRange(c, "monitoring.resolve_after", m.resolve_after, 1, kMaxAlertWindows));
  if (m.bins < 2 || m.bins > 100)
    return FieldError(c, "monitoring.bins", "between 2 and 100, got " + std::to_string(m.bins));
  if (!(m.window_seconds >= 0.001 && m.window_seconds <= kMaxWindowSeconds)) {
    return FieldError(
        c, "monitoring.window_seconds",
        "a number of seconds from 0.001 to " + std::to_string(static_cast<int64_t>(kMaxWindowSeconds)) + " (a week)");
  }
  if (m.min_window_rows > m.window_rows) {
    return FieldError(
        c, "monitoring.min_window_rows",
        "at most window_rows (" + std::to_string(m.window_rows) + "), got " + std::to_string(m.min_window_rows));
  }
  if (m.numeric_method != "psi" && m.numeric_method != "js" && m.numeric_method != "wasserstein" &&
      m.numeric_method != "ks") {
    return FieldError(c, "monitoring.numeric_method", "psi, js, wasserstein or ks, got '" + m.numeric_method + "'");
  }
  if (m.categorical_method != "js" && m.categorical_method != "chi2" && m.categorical_method != "psi") {
    return FieldError(c, "monitoring.categorical_method", "js, chi2 or psi, got '" + m.categorical_method + "'");
  }
  if (!(m.numeric_threshold > 0)) return FieldError(c, "monitoring.numeric_threshold", "a positive number");
  if (!(m.categorical_threshold > 0)) return FieldError(c, "monitoring.categorical_threshold", "a positive number");
  if (!(m.drift_share > 0 && m.drift_share <= 1)) return FieldError(c, "monitoring.drift_share", "in (0, 1]");
  if (!(m.nonfinite_spike >= 1)) return FieldError(c, "monitoring.nonfinite_spike", "a factor of at least 1");
  if (!(m.out_of_range_rate > 0 && m.out_of_range_rate <= 1)) {
    return FieldError(c, "monitoring.out_of_range_rate", "a share in (0, 1]");
  }
  return Status::Ok();
}

Status ValidateTensors(const ModelConfig& c, const std::vector<TensorSpec>& specs, const std::string& field) {
  if (specs.empty()) return FieldError(c, field, "at least one tensor");
  std::set<std::string> names;
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    const std::string f = field + "[" + std::to_string(i) + "]";
    if (s.name.empty()) return FieldError(c, f + ".name", "a non-empty name");
    if (!names.insert(s.name).second)
      return FieldError(c, f + ".name", "a unique name, '" + s.name + "' appears twice");
    int64_t fixed = 1;  // the elements of a row, counting variable dimensions as 1
    for (size_t d = 0; d < s.dims.size(); ++d) {
      if (s.dims[d] == 0 || s.dims[d] < -1) {
        return FieldError(c, f + ".shape[" + std::to_string(d) + "]",
                          "a positive size or -1, got " + std::to_string(s.dims[d]));
      }
      if (s.dims[d] > 0 && (__builtin_mul_overflow(fixed, s.dims[d], &fixed) || fixed > kMaxRowElements)) {
        return FieldError(
            c, f + ".shape",
            "at most " + std::to_string(kMaxRowElements) + " elements per row, got " + ShapeToString(s.dims));
      }
    }
    if (c.max_batch_size == 0 && s.dims.empty()) {
      return FieldError(c, f + ".shape", "at least one dimension");
    }
    if (s.datatype == DataType::kBytes) {
      return FieldError(c, f + ".datatype",
                        "a numeric type: backend " + std::string(BackendKindName(c.backend)) + " does not take BYTES");
    }
    switch (c.backend) {
      case BackendKind::kOnnx:
        if (s.datatype != DataType::kFp32) {
          return FieldError(
              c, f + ".datatype",
              "FP32 (the onnx backend, OpenCV DNN, runs FP32 tensors), got " + std::string(DataTypeName(s.datatype)));
        }
        break;
      case BackendKind::kXgboost:
        if (s.datatype != DataType::kFp32) {
          return FieldError(c, f + ".datatype",
                            "FP32 for the xgboost backend, got " + std::string(DataTypeName(s.datatype)));
        }
        break;
      case BackendKind::kTorchScript:
        if (s.datatype == DataType::kBf16 || s.datatype == DataType::kUint16 || s.datatype == DataType::kUint32 ||
            s.datatype == DataType::kUint64) {
          return FieldError(c, f + ".datatype", "a type libtorch supports (not BF16 or UINT16/32/64)");
        }
        break;
      case BackendKind::kEnsemble:
        if (field == "outputs" && s.datatype != DataType::kFp32) {
          return FieldError(c, f + ".datatype",
                            "FP32 for an ensemble's output (members' outputs are combined in FP32), got " +
                                std::string(DataTypeName(s.datatype)));
        }
        break;
    }
  }
  return Status::Ok();
}

// What the config alone can check; the members' own configs are checked
// against it when the ensemble loads (CheckEnsembleMember).
Status ValidateEnsemble(const ModelConfig& c) {
  const EnsembleConfig& e = c.ensemble;
  if (c.outputs.size() != 1) return FieldError(c, "outputs", "exactly one output for an ensemble (the combined one)");
  if (e.members.empty()) return FieldError(c, "ensemble.members", "at least one member");
  std::set<std::pair<std::string, int64_t>> seen;
  for (size_t i = 0; i < e.members.size(); ++i) {
    const std::string f = "ensemble.members[" + std::to_string(i) + "]";
    const EnsembleMember& m = e.members[i];
    if (m.model.empty() || m.model.size() > 256 || m.model.find('/') != std::string::npos || m.model == "." ||
        m.model == "..") {
      return FieldError(c, f + ".model", "the name of a model folder");
    }
    if (m.model == c.name) return FieldError(c, f + ".model", "another model (an ensemble cannot be its own member)");
    VIGIL_RETURN_IF_ERROR(InRange(c, f + ".version (0 = the highest ready)", m.version, 0, kMaxVersions));
    if (!seen.insert({m.model, m.version}).second) {
      return FieldError(c, f,
                        "each member once, '" + m.model + "' version " + std::to_string(m.version) +
                            " appears twice (give it a weight instead)");
    }
    if (!(m.weight > 0 && m.weight <= kMaxEnsembleWeight))
      return FieldError(c, f + ".weight", "a positive number up to 1e6");
  }
  VIGIL_RETURN_IF_ERROR(InRange(c, "ensemble.min_members", e.min_members, 1, static_cast<int64_t>(e.members.size())));
  if (c.warmup.enabled) return FieldError(c, "warmup", "no warmup for an ensemble (its members warm up themselves)");
  return Status::Ok();
}

}  // namespace

std::string_view BackendKindName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kOnnx:
      return "onnx";
    case BackendKind::kTorchScript:
      return "torchscript";
    case BackendKind::kXgboost:
      return "xgboost";
    case BackendKind::kEnsemble:
      return "ensemble";
  }
  return "unknown";
}

std::string_view BackendPlatform(BackendKind kind) {
  switch (kind) {
    case BackendKind::kOnnx:
      return "onnx_onnxv1";
    case BackendKind::kTorchScript:
      return "pytorch_torchscript";
    case BackendKind::kXgboost:
      return "xgboost";
    case BackendKind::kEnsemble:
      return "ensemble";
  }
  return "unknown";
}

std::vector<std::string> BackendModelFileNames(BackendKind kind) {
  switch (kind) {
    case BackendKind::kOnnx:
      return {"model.onnx"};
    case BackendKind::kTorchScript:
      return {"model.pt", "model.torchscript"};
    case BackendKind::kXgboost:
      return {"model.ubj", "model.json"};
    case BackendKind::kEnsemble:
      return {};
  }
  return {};
}

int ModelConfig::InputIndex(std::string_view input_name) const {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].name == input_name) return static_cast<int>(i);
  }
  return -1;
}

int ModelConfig::OutputIndex(std::string_view output_name) const {
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].name == output_name) return static_cast<int>(i);
  }
  return -1;
}

StatusOr<ModelConfig> ParseModelConfig(std::string_view model_name, std::string_view yaml_text) {
  const std::string name(model_name);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument("model '" + name + "': config.yaml is not valid YAML: " + e.what());
  }
  try {
    return ParseTree(name, root);
  } catch (const ConfigError& e) {
    return InvalidArgument("model '" + name + "': config field '" + e.field + "': expected " + e.expected);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("model '" + name + "': config.yaml: " + e.what());
  }
}

void NormalizeModelConfig(ModelConfig& c) {
  auto& pref = c.dynamic_batching.preferred_batch_sizes;
  std::sort(pref.begin(), pref.end());
  pref.erase(std::unique(pref.begin(), pref.end()), pref.end());
  std::sort(c.version_policy.specific.begin(), c.version_policy.specific.end());
  if (c.warmup.enabled && c.max_batch_size > 0) {
    c.warmup.batch_size = std::min(c.warmup.batch_size, c.max_batch_size);
  }
  if (c.max_batch_size == 0) c.warmup.batch_size = 1;
  for (auto& m : c.ensemble.members) {
    if (m.output.empty() && c.outputs.size() == 1) m.output = c.outputs[0].name;
  }
  double& p99 = c.monitoring.health.latency_p99_ms;
  if (std::isnan(p99)) {
    const int64_t timeout_us = c.dynamic_batching.default_timeout_us;
    p99 = timeout_us > 0 ? 0.8 * static_cast<double>(timeout_us) / 1000 : 1000;
  }
}

Status ValidateModelConfig(const ModelConfig& c) {
  if (c.max_batch_size < 0 || c.max_batch_size > kMaxBatchSize)
    return FieldError(c, "max_batch_size",
                      "0 (no batching) or a positive integer up to " + std::to_string(kMaxBatchSize) + ", got " +
                          std::to_string(c.max_batch_size));
  VIGIL_RETURN_IF_ERROR(ValidateTensors(c, c.inputs, "inputs"));
  VIGIL_RETURN_IF_ERROR(ValidateTensors(c, c.outputs, "outputs"));
  const auto& d = c.dynamic_batching;
  VIGIL_RETURN_IF_ERROR(InRange(c, "dynamic_batching.max_queue_delay_us", d.max_queue_delay_us, 0, kMaxQueueDelayUs));
  VIGIL_RETURN_IF_ERROR(InRange(c, "dynamic_batching.max_queue_size", d.max_queue_size, 1, kMaxQueueSize));
  VIGIL_RETURN_IF_ERROR(
      InRange(c, "dynamic_batching.default_timeout_us (0 = none)", d.default_timeout_us, 0, kMaxDefaultTimeoutUs));
  for (int64_t p : d.preferred_batch_sizes) {
    if (p <= 0 || (c.max_batch_size > 0 && p > c.max_batch_size) || (c.max_batch_size == 0 && p != 1)) {
      return FieldError(
          c, "dynamic_batching.preferred_batch_sizes",
          "sizes between 1 and max_batch_size (" + std::to_string(c.max_batch_size) + "), got " + std::to_string(p));
    }
  }
  if (c.instances < 1 || c.instances > kMaxInstances)
    return FieldError(c, "instances", "between 1 and 64, got " + std::to_string(c.instances));
  if (c.version_policy.kind == VersionPolicy::Kind::kLatest)
    VIGIL_RETURN_IF_ERROR(InRange(c, "version_policy.latest", c.version_policy.latest, 1, kMaxVersions));
  if (c.version_policy.kind == VersionPolicy::Kind::kSpecific) {
    if (c.version_policy.specific.empty())
      return FieldError(c, "version_policy.specific", "a non-empty list of versions");
    for (int64_t v : c.version_policy.specific) {
      if (v < 1) return FieldError(c, "version_policy.specific", "positive version numbers, got " + std::to_string(v));
    }
  }
  if (c.warmup.enabled) {
    VIGIL_RETURN_IF_ERROR(InRange(c, "warmup.batch_size", c.warmup.batch_size, 1, kMaxBatchSize));
    if (c.warmup.iterations < 1 || c.warmup.iterations > 1000)
      return FieldError(c, "warmup.iterations", "between 1 and 1000");
    for (const auto& in : c.inputs) {
      for (int64_t dim : in.dims) {
        if (dim < 0)
          return FieldError(c, "warmup", "fixed input shapes (input '" + in.name + "' has a variable dimension)");
      }
    }
  }
  VIGIL_RETURN_IF_ERROR(ValidateMonitoring(c));
  VIGIL_RETURN_IF_ERROR(ValidateBackendOptions(c.backend_options, "backend_options", c.name));
  if (c.backend == BackendKind::kXgboost) {
    if (c.inputs.size() != 1 || c.inputs[0].dims.size() != 1) {
      return FieldError(c, "inputs", "exactly one input of shape [features] for the xgboost backend");
    }
    if (c.outputs.size() != 1) return FieldError(c, "outputs", "exactly one output for the xgboost backend");
    if (c.max_batch_size == 0)
      return FieldError(c, "max_batch_size", "a positive value for the xgboost backend (rows are the batch)");
  }
  if (c.backend == BackendKind::kEnsemble) VIGIL_RETURN_IF_ERROR(ValidateEnsemble(c));
  return Status::Ok();
}

BackendSpec BackendSpecOf(const ModelConfig& c, int64_t version, const std::filesystem::path& model_file) {
  BackendSpec spec;
  spec.model_name = c.name;
  spec.version = version;
  spec.model_path = model_file;
  spec.max_batch_size = c.max_batch_size;
  spec.inputs = c.inputs;
  spec.outputs = c.outputs;
  spec.options = c.backend_options;
  return spec;
}

Status ValidateBackendOptions(const BackendOptions& o, const std::string& field, const std::string& model) {
  auto fail = [&](const std::string& key, const std::string& expected) {
    return InvalidArgument("model '" + model + "': config field '" + field + "." + key + "': expected " + expected);
  };
  if (o.intra_op_threads < 1 || o.intra_op_threads > kMaxIntraOpThreads)
    return fail("intra_op_threads",
                "from 1 to " + std::to_string(kMaxIntraOpThreads) + ", got " + std::to_string(o.intra_op_threads));
  if (o.iteration_end < 0 || o.iteration_end > kMaxTrees)
    return fail("iteration_end", "0 (every tree) or a round count up to " + std::to_string(kMaxTrees) + ", got " +
                                     std::to_string(o.iteration_end));
  static const std::set<std::string> backends = {"opencv", "inference_engine", "halide", "vkcom", "cuda", "webnn",
                                                 "timvx"};
  static const std::set<std::string> targets = {"cpu",  "opencl", "opencl_fp16", "myriad", "vulkan",
                                                "fpga", "cuda",   "cuda_fp16",   "hddl",   "npu"};
  auto list = [](const std::set<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  if (!backends.count(o.dnn_backend))
    return fail("dnn_backend", "one of " + list(backends) + ", got '" + o.dnn_backend + "'");
  if (!targets.count(o.dnn_target))
    return fail("dnn_target", "one of " + list(targets) + ", got '" + o.dnn_target + "'");
  return Status::Ok();
}

StatusOr<BackendOptions> LoadVersionBackendOptions(const ModelConfig& c, std::string_view yaml_text) {
  const std::string field = "backend_options.yaml";
  BackendOptions o = c.backend_options;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml_text));
    if (!root.IsNull()) ReadBackendOptions(root, "", c.backend, o);
  } catch (const ConfigError& e) {
    return InvalidArgument("model '" + c.name + "': " + field + ": '" + e.field + "': expected " + e.expected);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("model '" + c.name + "': " + field + " is not valid YAML: " + e.what());
  }
  VIGIL_RETURN_IF_ERROR(ValidateBackendOptions(o, field, c.name));
  return o;
}

StatusOr<ModelConfig> LoadModelConfig(std::string_view model_name, std::string_view yaml_text) {
  VIGIL_ASSIGN_OR_RETURN(ModelConfig c, ParseModelConfig(model_name, yaml_text));
  NormalizeModelConfig(c);
  VIGIL_RETURN_IF_ERROR(ValidateModelConfig(c));
  return c;
}

}  // namespace vigil
