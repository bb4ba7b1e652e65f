#include "tuning/distill.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

#include "backends/train.h"
#include "monitoring/quality.h"
#include "protocol/json_writer.h"
#include "store/store.h"

namespace vigil {
namespace fs = std::filesystem;
namespace {

// A student is chosen when its held-out agreement is within this of the best
// one's: then the smallest on disk wins.
constexpr double kAgreementSlack = 0.005;
constexpr int64_t kMinTrainRows = 10;

// Removes a folder when it goes out of scope.
struct Scratch {
  fs::path dir;
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

// Rows `index` of `all` (inputs and labels), in that order.
ReferenceData Subset(const ReferenceData& all, const std::vector<int64_t>& index) {
  ReferenceData d;
  d.width = all.width;
  d.rows = static_cast<int64_t>(index.size());
  d.inputs.reserve(index.size() * static_cast<size_t>(all.width));
  for (int64_t r : index) {
    d.inputs.insert(d.inputs.end(), all.inputs.begin() + r * all.width, all.inputs.begin() + (r + 1) * all.width);
    d.labels.push_back(r < static_cast<int64_t>(all.labels.size()) ? all.labels[static_cast<size_t>(r)] : NAN);
  }
  return d;
}

std::vector<float> Rows(const std::vector<float>& values, int64_t k, const std::vector<int64_t>& index) {
  std::vector<float> out;
  out.reserve(index.size() * static_cast<size_t>(k));
  for (int64_t r : index) out.insert(out.end(), values.begin() + r * k, values.begin() + (r + 1) * k);
  return out;
}

// What the teacher's first output is: class probabilities, a probability, or values.
StudentTarget TargetOf(const std::vector<float>& y, int64_t rows, int64_t k) {
  bool unit = true, sums_to_one = true;
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      const float v = y[static_cast<size_t>(r * k + j)];
      unit &= v >= 0 && v <= 1;
      sum += v;
    }
    sums_to_one &= std::abs(sum - 1) < 1e-3;
  }
  if (unit && k >= 2 && sums_to_one) return StudentTarget::kClassProbabilities;
  if (unit && k == 1) return StudentTarget::kProbability;
  return StudentTarget::kValue;
}

std::string_view TargetName(StudentTarget t) {
  switch (t) {
    case StudentTarget::kClassProbabilities:
      return "class probabilities";
    case StudentTarget::kProbability:
      return "a probability";
    case StudentTarget::kValue:
      return "values";
  }
  return "values";
}

// The prediction log's sampled inputs of an endpoint: full rows of `width`.
StatusOr<ReferenceData> LoggedRows(const DistillOptions& o, int64_t width) {
  ReferenceData d;
  d.width = width;
  if (o.data_dir.empty()) return d;
  if (o.endpoint.empty()) {
    return InvalidArgument("--data-dir or --store needs --endpoint: whose logged traffic to learn from");
  }
  VIGIL_ASSIGN_OR_RETURN(auto store, OpenStore(o.data_dir));
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  auto scanned =
      store->ScanSampledInputs(o.endpoint, o.since_ms, now_ms + 1, o.max_rows, [&](const ServedPrediction& p) {
        const std::vector<double> v = ParseCompactValues(p.inputs);
        const auto full =
            static_cast<int64_t>(v.size()) / width;  // a long request is logged cut short: whole rows only
        for (int64_t r = 0; r < full && d.rows < o.max_rows; ++r) {
          for (int64_t j = 0; j < width; ++j)
            d.inputs.push_back(static_cast<float>(v[static_cast<size_t>(r * width + j)]));
          ++d.rows;
        }
      });
  if (!scanned.ok()) return scanned.status().WithContext("reading the prediction log in " + o.data_dir);
  d.labels.assign(static_cast<size_t>(d.rows), NAN);
  return d;
}

std::string StudentConfig(const ModelFiles& teacher, StudentKind kind, int64_t k, const std::string& note) {
  const ModelConfig& c = teacher.config;
  std::string dims;
  for (int64_t dim : c.inputs[0].dims) dims += (dims.empty() ? "" : ", ") + std::to_string(dim);
  return fmt::format(
      "# {}\n"
      "backend: {}\n"
      "max_batch_size: {}\n"
      "inputs: [{{name: {}, datatype: FP32, shape: [{}]}}]\n"
      "outputs: [{{name: {}, datatype: FP32, shape: [{}]}}]\n",
      note, kind == StudentKind::kXgboost ? "xgboost" : "torchscript", c.max_batch_size > 0 ? c.max_batch_size : 64,
      c.inputs[0].name, dims, c.outputs[0].name, k);
}

int64_t FileBytes(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

}  // namespace

StatusOr<DistillReport> RunDistill(const DistillOptions& o, std::FILE* progress) {
  if (!(o.holdout > 0 && o.holdout < 1)) return InvalidArgument("--holdout must be between 0 and 1");
  if (o.student == StudentKind::kXgboost && (o.trees.empty() || o.depths.empty()))
    return InvalidArgument("--trees and --depth need at least one value each");
  if (o.student == StudentKind::kMlp && o.hidden.empty()) return InvalidArgument("--hidden needs at least one value");
  VIGIL_ASSIGN_OR_RETURN(ModelFiles teacher, FindModelFiles(o.repository, o.teacher, o.version));
  const std::string name = o.output.empty()
                               ? o.teacher + (o.student == StudentKind::kXgboost ? "_distilled_xgb" : "_distilled_mlp")
                               : o.output;
  if (name.empty() || name[0] == '.' || name[0] == '_' || name.find('/') != std::string::npos || name == "deployments")
    return InvalidArgument("-o '" + name + "' is not a model name");
  std::error_code ec;
  if (o.write && fs::exists(o.repository / name, ec))
    return FailedPrecondition("model '" + name + "' already exists in " + o.repository.string() +
                              "; name the student with -o");

  VIGIL_ASSIGN_OR_RETURN(ReferenceData all, ReadModelReference(teacher, o.max_rows));
  DistillReport report;
  report.teacher = teacher.config.name;
  report.version = teacher.version;
  report.teacher_backend = std::string(BackendKindName(teacher.config.backend));
  report.student_backend = o.student == StudentKind::kXgboost ? "xgboost" : "torchscript";
  report.reference_rows = all.rows;
  VIGIL_ASSIGN_OR_RETURN(ReferenceData logged, LoggedRows(o, all.width));
  report.log_rows = logged.rows;
  if (all.labels.empty()) all.labels.assign(static_cast<size_t>(all.rows), NAN);
  all.inputs.insert(all.inputs.end(), logged.inputs.begin(), logged.inputs.end());
  all.labels.insert(all.labels.end(), logged.labels.begin(), logged.labels.end());
  all.rows += logged.rows;

  // The teacher's answers on every row: what the students learn.
  if (progress)
    std::fprintf(progress, "teacher %s: answering %lld rows\n", o.teacher.c_str(), static_cast<long long>(all.rows));
  const std::string_view kind = BackendKindName(teacher.config.backend);
  VIGIL_ASSIGN_OR_RETURN(auto teacher_backend, CreateBackend(kind, teacher.Spec()));
  VIGIL_ASSIGN_OR_RETURN(Outputs answers,
                         RunRows(*teacher_backend, teacher.config, all,
                                 teacher.config.max_batch_size > 0 ? teacher.config.max_batch_size : 1));
  const std::vector<float>& y = answers[0];
  const int64_t k = static_cast<int64_t>(y.size()) / all.rows;
  if (k < 1 || k * all.rows != static_cast<int64_t>(y.size()))
    return FailedPrecondition("the teacher's first output is not the same width for every row");
  const StudentTarget target = TargetOf(y, all.rows, k);
  report.target = std::string(TargetName(target));

  // Held out: a seeded shuffle's last share, never trained on.
  std::vector<int64_t> order(static_cast<size_t>(all.rows));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(o.seed);
  std::shuffle(order.begin(), order.end(), rng);
  const auto held = std::max<int64_t>(1, std::llround(o.holdout * static_cast<double>(all.rows)));
  const std::vector<int64_t> train_index(order.begin(), order.end() - held),
      held_index(order.end() - held, order.end());
  report.train_rows = static_cast<int64_t>(train_index.size());
  report.held_out_rows = held;
  if (report.train_rows < kMinTrainRows)
    return FailedPrecondition(
        fmt::format("{} rows to train on ({} in reference.csv, {} logged): at least {}; log more "
                    "inputs (--log-inputs-sample-rate) and pass --data-dir",
                    report.train_rows, report.reference_rows, report.log_rows, kMinTrainRows));
  const ReferenceData train = Subset(all, train_index), held_out = Subset(all, held_index);
  for (double l : held_out.labels) report.held_out_labelled += !std::isnan(l);
  const std::vector<float> train_y = Rows(y, k, train_index);
  Outputs teacher_held = {Rows(y, k, held_index)};
  report.teacher_accuracy = CompareOutputs(teacher_held, teacher_held, held, held_out.labels, 1).accuracy;
  report.teacher_speed = MeasureSpeed(*teacher_backend, teacher.config, held_out, o.seconds);
  report.teacher_bytes = FileBytes(teacher.model_file);

  TrainingSet set;
  set.x = train.inputs.data();
  set.rows = train.rows;
  set.width = train.width;
  set.y = train_y.data();
  set.k = k;
  set.target = target;
  set.seed = o.seed;
  auto add = [&](std::string student, int64_t trees, int64_t depth, int64_t hidden) {
    StudentResult s;
    s.name = std::move(student);
    s.trees = trees;
    s.depth = depth;
    s.hidden = hidden;
    report.students.push_back(std::move(s));
  };
  if (o.student == StudentKind::kXgboost) {
    for (int64_t t : o.trees) {
      for (int64_t d : o.depths) add(fmt::format("xgboost trees={} depth={}", t, d), t, d, 0);
    }
  } else {
    for (int64_t h : o.hidden) add(fmt::format("mlp hidden={}", h), 0, 0, h);
  }

  // Each student in a scratch repository of its own inside the real one
  // (a dot folder, which no server loads), so the chosen one moves in whole.
  Scratch scratch{o.repository / (".vigil-distill-" + std::to_string(::getpid()))};
  fs::remove_all(scratch.dir, ec);
  for (size_t i = 0; i < report.students.size(); ++i) {
    StudentResult& s = report.students[i];
    if (progress) std::fprintf(progress, "[%zu/%zu] %s\n", i + 1, report.students.size(), s.name.c_str());
    const std::string folder = "student" + std::to_string(i);
    const fs::path dir = scratch.dir / folder;
    fs::create_directories(dir / "1", ec);
    const fs::path file = dir / "1" / (o.student == StudentKind::kXgboost ? "model.json" : "model.pt");
    const Status trained = o.student == StudentKind::kXgboost ? TrainXgboostStudent(set, s.trees, s.depth, file)
                                                              : TrainMlpStudent(set, s.hidden, file);
    if (!trained.ok()) {
      s.error = trained.message();
      continue;
    }
    {
      std::ofstream config(dir / "config.yaml");
      config << StudentConfig(teacher, o.student, k, "student");
    }
    auto files = FindModelFiles(scratch.dir, folder, 1);
    if (!files.ok()) {
      s.error = files.status().message();
      continue;
    }
    auto backend = CreateBackend(BackendKindName(files->config.backend), files->Spec());
    if (!backend.ok()) {
      s.error = backend.status().message();
      continue;
    }
    auto got = RunRows(**backend, files->config, held_out, files->config.max_batch_size);
    if (!got.ok()) {
      s.error = got.status().message();
      continue;
    }
    s.held_out = CompareOutputs(teacher_held, *got, held, held_out.labels, 1);
    s.speed = MeasureSpeed(**backend, files->config, held_out, o.seconds);
    s.bytes = FileBytes(file);
  }

  double best = -1;
  for (const auto& s : report.students) {
    if (s.error.empty()) best = std::max(best, s.held_out.agreement);
  }
  for (size_t i = 0; i < report.students.size(); ++i) {
    const auto& s = report.students[i];
    if (!s.error.empty() || s.held_out.agreement < best - kAgreementSlack) continue;
    if (!report.chosen || s.bytes < report.students[*report.chosen].bytes) report.chosen = i;
  }
  if (!report.chosen) return Internal("no student could be trained: " + report.students[0].error);
  if (!o.write) return report;

  // The chosen one becomes REPO/NAME: its config says where it came from,
  // and it gets the teacher's reference.csv (its drift reference).
  const StudentResult& chosen = report.students[*report.chosen];
  const fs::path from = scratch.dir / ("student" + std::to_string(*report.chosen));
  {
    std::ofstream config(from / "config.yaml", std::ios::trunc);
    config << StudentConfig(teacher, o.student, k,
                            fmt::format("vigil distill: {} of {} version {} (held-out agreement {:.4f} on {} rows)",
                                        chosen.name, report.teacher, report.version, chosen.held_out.agreement, held));
  }
  const fs::path reference = fs::exists(teacher.version_dir / "reference.csv", ec)
                                 ? teacher.version_dir / "reference.csv"
                                 : teacher.dir / "reference.csv";
  fs::copy_file(reference, from / "reference.csv", ec);
  if (fs::exists(o.repository / name, ec))
    return FailedPrecondition("model '" + name + "' appeared while the students trained; nothing was written");
  fs::rename(from, o.repository / name, ec);
  if (ec) return Internal("cannot move the student to " + (o.repository / name).string() + ": " + ec.message());
  report.written = name;
  return report;
}

std::string FormatDistillTable(const DistillReport& r) {
  auto accuracy = [](const std::optional<double>& a) { return a ? fmt::format("{:.4f}", *a) : std::string("-"); };
  std::string out = fmt::format(
      "teacher {} version {} ({}, answers {}): {} reference rows + {} logged; trained on {}, held out {} ({} "
      "labelled)\n",
      r.teacher, r.version, r.teacher_backend, r.target, r.reference_rows, r.log_rows, r.train_rows, r.held_out_rows,
      r.held_out_labelled);
  out += fmt::format("  {:<28} {:>8} {:>10} {:>10} {:>8} {:>8} {:>10} {:>6} {:>10}\n", "model", "agree", "max|diff|",
                     "mean|diff|", "accuracy", "p50 ms", "rows/s", "batch", "bytes");
  out += fmt::format("  {:<28} {:>8} {:>10} {:>10} {:>8} {:>8.3f} {:>10.0f} {:>6} {:>10}\n", "teacher", "1.0000", "-",
                     "-", accuracy(r.teacher_accuracy), r.teacher_speed.p50_ms, r.teacher_speed.rows_per_s,
                     r.teacher_speed.best_batch, r.teacher_bytes);
  for (size_t i = 0; i < r.students.size(); ++i) {
    const auto& s = r.students[i];
    const std::string mark = r.chosen == i ? "* " : "  ";
    if (!s.error.empty()) {
      out += fmt::format("{}{:<28} failed: {}\n", mark, s.name, s.error);
      continue;
    }
    out += fmt::format("{}{:<28} {:>8.4f} {:>10.2e} {:>10.2e} {:>8} {:>8.3f} {:>10.0f} {:>6} {:>10}\n", mark, s.name,
                       s.held_out.agreement, s.held_out.max_abs_diff, s.held_out.mean_abs_diff,
                       accuracy(s.held_out.accuracy), s.speed.p50_ms, s.speed.rows_per_s, s.speed.best_batch, s.bytes);
  }
  if (r.chosen) {
    const auto& s = r.students[*r.chosen];
    out += fmt::format(
        "chosen: {} (the smallest within {:.1f} points of the best agreement): {:.2f}x the teacher's "
        "rows/s, {:.1f}% of its size\n",
        s.name, kAgreementSlack * 100,
        r.teacher_speed.rows_per_s > 0 ? s.speed.rows_per_s / r.teacher_speed.rows_per_s : 0,
        r.teacher_bytes > 0 ? 100.0 * static_cast<double>(s.bytes) / static_cast<double>(r.teacher_bytes) : 0);
  }
  if (!r.written.empty()) out += "wrote model '" + r.written + "' (config.yaml, 1/, reference.csv)\n";
  return out;
}

std::string DistillJson(const DistillReport& r) {
  JsonWriter j;
  auto speed = [&](const Speed& s) {
    j.RoundedField("p50_ms", s.p50_ms, 4);
    j.RoundedField("p99_ms", s.p99_ms, 4);
    j.RoundedField("rows_per_s", s.rows_per_s, 1);
    j.Field("best_batch", s.best_batch);
  };
  j.StartObject();
  j.Field("teacher", r.teacher);
  j.Field("version", r.version);
  j.Field("target", r.target);
  j.Field("student_backend", r.student_backend);
  j.Field("reference_rows", r.reference_rows);
  j.Field("log_rows", r.log_rows);
  j.Field("train_rows", r.train_rows);
  j.Field("held_out_rows", r.held_out_rows);
  j.Key("teacher_measured");
  j.StartObject();
  speed(r.teacher_speed);
  j.Field("bytes", r.teacher_bytes);
  j.Key("accuracy");
  r.teacher_accuracy ? j.Rounded(*r.teacher_accuracy, 6) : j.Null();
  j.EndObject();
  j.Key("students");
  j.StartArray();
  for (const auto& s : r.students) {
    j.StartObject();
    j.Field("name", s.name);
    if (!s.error.empty()) {
      j.Field("error", s.error);
      j.EndObject();
      continue;
    }
    j.RoundedField("agreement", s.held_out.agreement, 6);
    j.Field("max_abs_diff", s.held_out.max_abs_diff);
    j.Field("mean_abs_diff", s.held_out.mean_abs_diff);
    j.Key("accuracy");
    s.held_out.accuracy ? j.Rounded(*s.held_out.accuracy, 6) : j.Null();
    speed(s.speed);
    j.Field("bytes", s.bytes);
    j.EndObject();
  }
  j.EndArray();
  j.Key("chosen");
  r.chosen ? j.String(r.students[*r.chosen].name) : j.Null();
  j.Key("written");
  r.written.empty() ? j.Null() : j.String(r.written);
  j.EndObject();
  return j.Take();
}

}  // namespace vigil
