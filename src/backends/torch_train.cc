// MLP students (backends/train.h), trained with libtorch's C++ API and saved
// as TorchScript. The libtorch headers stay in this translation unit.
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>

#include "backends/train.h"

namespace vigil {

Status TrainMlpStudent(const TrainingSet& d, int64_t hidden, const std::filesystem::path& out_file) {
  if (d.rows < 2 || d.width < 1 || d.k < 1) return InvalidArgument("an MLP student needs at least 2 rows");
  if (hidden < 1 || hidden > 4096) return InvalidArgument("hidden: from 1 to 4096");
  try {
    torch::manual_seed(d.seed);
    at::set_num_threads(1);
    const auto x = torch::from_blob(const_cast<float*>(d.x), {d.rows, d.width}, torch::kFloat32).clone();
    const auto y = torch::from_blob(const_cast<float*>(d.y), {d.rows, d.k}, torch::kFloat32).clone();
    const auto mean = x.mean(0);
    const auto std = x.std(0).clamp_min(1e-6);
    const auto xs = (x - mean) / std;
    torch::nn::Linear l1(d.width, hidden), l2(hidden, d.k);
    std::vector<torch::Tensor> params = l1->parameters();
    for (const auto& p : l2->parameters()) params.push_back(p);
    torch::optim::Adam adam(params, torch::optim::AdamOptions(1e-2));
    // Mini-batches of 256 in a new order each epoch; a few hundred epochs,
    // bounded in steps so a large log trains in seconds, not hours.
    const int64_t batch = std::min<int64_t>(256, d.rows);
    const int64_t per_epoch = (d.rows + batch - 1) / batch;
    const int64_t epochs = std::clamp<int64_t>(4000 / per_epoch, 1, 400);
    for (int64_t e = 0; e < epochs; ++e) {
      const auto order = torch::randperm(d.rows, torch::kLong);
      for (int64_t first = 0; first < d.rows; first += batch) {
        const auto idx = order.slice(0, first, std::min(first + batch, d.rows));
        const auto z = l2->forward(torch::relu(l1->forward(xs.index_select(0, idx))));
        const auto t = y.index_select(0, idx);
        torch::Tensor loss;
        switch (d.target) {
          case StudentTarget::kClassProbabilities:
            loss = -(t * torch::log_softmax(z, 1)).sum(1).mean();
            break;
          case StudentTarget::kProbability:
            loss = torch::binary_cross_entropy_with_logits(z, t.clamp(0, 1));
            break;
          case StudentTarget::kValue:
            loss = torch::mse_loss(z, t);
            break;
        }
        adam.zero_grad();
        loss.backward();
        adam.step();
      }
    }
    // The served module: standardisation, the two layers and the teacher's
    // kind of answer, as TorchScript the torchscript backend loads.
    torch::jit::Module m("VigilStudent");
    torch::NoGradGuard no_grad;
    m.register_buffer("mean", mean.reshape({1, d.width}).contiguous());
    m.register_buffer("std", std.reshape({1, d.width}).contiguous());
    m.register_buffer("w1", l1->weight.detach().t().contiguous());
    m.register_buffer("b1", l1->bias.detach().clone());
    m.register_buffer("w2", l2->weight.detach().t().contiguous());
    m.register_buffer("b2", l2->bias.detach().clone());
    const std::string head = d.target == StudentTarget::kClassProbabilities ? "torch.softmax(z, 1)"
                             : d.target == StudentTarget::kProbability      ? "torch.sigmoid(z)"
                                                                            : "z";
    m.define(
        "def forward(self, x):\n"
        "    h = torch.relu(torch.addmm(self.b1, (x - self.mean) / self.std, self.w1))\n"
        "    z = torch.addmm(self.b2, h, self.w2)\n"
        "    return " +
        head + "\n");
    m.eval();
    m.save(out_file.string());
    return Status::Ok();
  } catch (const c10::Error& e) {
    return Internal(std::string("libtorch failed training the MLP student: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Internal(std::string("training the MLP student: ") + e.what());
  }
}

}  // namespace vigil
