// The gRPC side of the client library: a blocking InferenceClient and the
// gRPC load engine (callback API; many calls multiplexed on a few channels).
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <random>
#include <thread>
#include <unordered_set>

#include "client/inference_client.h"
#include "client/load.h"
#include "core/thread_annotations.h"
#include "grpc_predict_v2.grpc.pb.h"
#include "protocol/oip_grpc.h"
#include "protocol/tls.h"

namespace vigil {
namespace {

namespace pb = ::inference;
using Clock = std::chrono::steady_clock;

StatusCode FromGrpc(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return StatusCode::kOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return StatusCode::kInvalidArgument;
    case grpc::StatusCode::NOT_FOUND:
      return StatusCode::kNotFound;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:
      return StatusCode::kUnavailable;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return StatusCode::kResourceExhausted;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return StatusCode::kDeadlineExceeded;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return StatusCode::kFailedPrecondition;
    case grpc::StatusCode::UNIMPLEMENTED:
      return StatusCode::kUnimplemented;
    case grpc::StatusCode::UNAUTHENTICATED:
      return StatusCode::kUnauthenticated;
    case grpc::StatusCode::PERMISSION_DENIED:
      return StatusCode::kPermissionDenied;
    case grpc::StatusCode::ABORTED:
      return StatusCode::kAborted;
    default:
      return StatusCode::kInternal;
  }
}

const char* GrpcCodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < 17 ? kNames[i] : "UNKNOWN";
}

Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return Status::Ok();
  return Status(FromGrpc(s.error_code()), s.error_message());
}

// Each channel gets its own TCP connection (gRPC shares subchannels between
// channels with equal arguments).
// Plain, or TLS with the PEM files of `o` (read once, shared by channels).
StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(const ClientOptions& o) {
  if (!o.tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;  // empty roots: gRPC's default (the system's)
  if (!o.tls_ca.empty()) {
    VIGIL_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPemFile(o.tls_ca, "--tls-ca"));
  }
  if (!o.tls_cert.empty()) {
    VIGIL_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadPemFile(o.tls_cert, "--tls-cert"));
    VIGIL_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadPemFile(o.tls_key, "--tls-key"));
  }
  return grpc::SslCredentials(ssl);
}

std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& o, int index,
                                           const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  TuneGrpcRuntime();
  grpc::ChannelArguments args;
  args.SetInt("vigil.channel_index", index);
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return grpc::CreateCustomChannel(o.host + ":" + std::to_string(o.port), credentials, args);
}

Status WaitConnected(grpc::Channel& channel, const ClientOptions& o) {
  const auto deadline = std::chrono::system_clock::now() + std::min(o.timeout, std::chrono::milliseconds(5000));
  if (!channel.WaitForConnected(deadline)) {
    return Unavailable("cannot connect to " + o.host + ":" + std::to_string(o.port) + " over gRPC" +
                       (o.tls ? " with TLS" : ""));
  }
  return Status::Ok();
}

class GrpcInferenceClient final : public InferenceClient {
 public:
  GrpcInferenceClient(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel)
      : options_(options), stub_(pb::GRPCInferenceService::NewStub(channel)) {}

  Status ServerReady() override {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    pb::ServerReadyResponse resp;
    VIGIL_RETURN_IF_ERROR(FromGrpc(stub_->ServerReady(&ctx, pb::ServerReadyRequest(), &resp)));
    return resp.ready() ? Status::Ok() : Unavailable("server is not ready");
  }

  StatusOr<ModelMetadata> GetModelMetadata(const std::string& model, const std::string& version) override {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    pb::ModelMetadataRequest req;
    req.set_name(model);
    req.set_version(version);
    pb::ModelMetadataResponse resp;
    VIGIL_RETURN_IF_ERROR(FromGrpc(stub_->ModelMetadata(&ctx, req, &resp)));
    ModelMetadata m;
    m.name = resp.name();
    m.platform = resp.platform();
    m.versions.assign(resp.versions().begin(), resp.versions().end());
    auto convert = [](const auto& tensors, std::vector<TensorMetadata>& out) {
      for (const auto& t : tensors)
        out.push_back({t.name(), ParseDataType(t.datatype()), {t.shape().begin(), t.shape().end()}});
    };
    convert(resp.inputs(), m.inputs);
    convert(resp.outputs(), m.outputs);
    return m;
  }

  StatusOr<InferReply> Infer(const InferCall& call) override {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    pb::ModelInferRequest req;
    EncodeGrpcRequest(call, options_.binary, &req);
    pb::ModelInferResponse resp;
    VIGIL_RETURN_IF_ERROR(FromGrpc(stub_->ModelInfer(&ctx, req, &resp)));
    return DecodeGrpcReply(resp);
  }

  Status LoadModel(const std::string& model, const std::optional<std::string>& config) override {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    Authorize(ctx);
    pb::RepositoryModelLoadRequest req;
    req.set_model_name(model);
    if (config) (*req.mutable_parameters())["config"].set_string_param(*config);
    pb::RepositoryModelLoadResponse resp;
    return FromGrpc(stub_->RepositoryModelLoad(&ctx, req, &resp));
  }

  Status UnloadModel(const std::string& model) override {
    grpc::ClientContext ctx;
    SetDeadline(ctx);
    Authorize(ctx);
    pb::RepositoryModelUnloadRequest req;
    req.set_model_name(model);
    pb::RepositoryModelUnloadResponse resp;
    return FromGrpc(stub_->RepositoryModelUnload(&ctx, req, &resp));
  }

 private:
  void SetDeadline(grpc::ClientContext& ctx) { ctx.set_deadline(std::chrono::system_clock::now() + options_.timeout); }
  void Authorize(grpc::ClientContext& ctx) {
    if (!options_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + options_.token);
  }

  ClientOptions options_;
  std::unique_ptr<pb::GRPCInferenceService::Stub> stub_;
};

// One call in flight. Closed loop reuses a call object per slot; open loop
// allocates one per arrival.
struct Call {
  std::unique_ptr<grpc::ClientContext> ctx;
  pb::ModelInferResponse resp;
  Clock::time_point scheduled;
  size_t slot = 0;
};

class GrpcLoadEngine final : public LoadEngine {
 public:
  GrpcLoadEngine(const LoadTarget& target, LoadRecorder* recorder) : target_(target), recorder_(recorder) {
    requests_.resize(target.samples.size());
    for (size_t i = 0; i < target.samples.size(); ++i) {
      InferCall c = target.samples[i];
      c.model = target.model;
      c.version = ParseVersionString(target.version).value_or(0);  // checked by the first request
      EncodeGrpcRequest(c, target.client.binary, &requests_[i]);
    }
  }
  ~GrpcLoadEngine() override { Stop(std::chrono::milliseconds(0)); }

  Status Start(const LoadLevel& level) override {
    level_ = level;
    const int channels = level.concurrency > 0 ? std::clamp(level.concurrency / 8, 1, 8) : 4;
    VIGIL_ASSIGN_OR_RETURN(auto credentials, MakeCredentials(target_.client));
    for (int i = 0; i < channels; ++i) {
      auto channel = MakeChannel(target_.client, i, credentials);
      VIGIL_RETURN_IF_ERROR(WaitConnected(*channel, target_.client));
      stubs_.push_back(pb::GRPCInferenceService::NewStub(channel));
    }
    running_.store(true);
    if (level.concurrency > 0) {
      slots_.resize(static_cast<size_t>(level.concurrency));
      for (size_t i = 0; i < slots_.size(); ++i) {
        slots_[i] = std::make_unique<Call>();
        slots_[i]->slot = i;
      }
      for (auto& s : slots_) Issue(s.get(), Clock::now());
    } else {
      pacer_ = std::thread([this] { Pace(); });
    }
    return Status::Ok();
  }

  void Stop(std::chrono::milliseconds grace) override {
    {
      MutexLock lock(mu_);
      if (!running_.exchange(false) && stubs_.empty()) return;
      stop_cv_.NotifyAll();
    }
    if (pacer_.joinable()) pacer_.join();
    MutexLock lock(mu_);
    const auto until = std::chrono::steady_clock::now() + grace;
    while (in_flight_.load() != 0 && done_cv_.WaitUntil(lock, until)) {
    }
    if (in_flight_.load() != 0) {
      for (Call* c : open_calls_) c->ctx->TryCancel();
      for (auto& s : slots_) {
        if (s->ctx) s->ctx->TryCancel();
      }
      // Cancelled calls complete promptly; their callbacks touch this object.
      while (in_flight_.load() != 0) done_cv_.Wait(lock);
    }
    lock.Unlock();
    slots_.clear();
    stubs_.clear();
  }

  int64_t InFlight() const override { return in_flight_.load(); }

 private:
  // Prepares a call; the caller counts it in flight and then Starts it.
  void Prepare(Call* call, Clock::time_point scheduled) {
    call->ctx = std::make_unique<grpc::ClientContext>();
    call->ctx->set_deadline(std::chrono::system_clock::now() + target_.timeout);
    call->scheduled = scheduled;
    call->resp.Clear();
  }

  void StartCall(Call* call) {
    const size_t n = next_.fetch_add(1, std::memory_order_relaxed);
    stubs_[n % stubs_.size()]->async()->ModelInfer(call->ctx.get(), &requests_[n % requests_.size()], &call->resp,
                                                   [this, call](grpc::Status s) { Done(call, s); });
  }

  void Issue(Call* call, Clock::time_point scheduled) {
    Prepare(call, scheduled);
    in_flight_.fetch_add(1);
    StartCall(call);
  }

  void Done(Call* call, const grpc::Status& s) {
    const auto now = Clock::now();
    if (s.ok()) {
      recorder_->Success(std::chrono::duration_cast<std::chrono::nanoseconds>(now - call->scheduled).count());
    } else if (running_.load() || s.error_code() != grpc::StatusCode::CANCELLED) {
      recorder_->Error(GrpcCodeName(s.error_code()), s.error_message());
    }
    if (level_.concurrency > 0) {
      // The slot sends again while running; it stays counted in flight, so
      // Stop never sees zero while a slot is between calls.
      bool again = false;
      {
        MutexLock lock(mu_);
        if (running_.load()) {
          Prepare(call, Clock::now());
          again = true;
        }
      }
      if (again) return StartCall(call);
    } else {
      MutexLock lock(mu_);
      open_calls_.erase(call);
      delete call;
    }
    if (in_flight_.fetch_sub(1) == 1) {
      MutexLock lock(mu_);
      done_cv_.NotifyAll();
    }
  }

  // Open loop: sends at the scheduled times from one thread; the answers
  // arrive on gRPC's threads.
  void Pace() {
    std::mt19937_64 rng(0x5eed);
    std::exponential_distribution<double> gap(1.0);
    const std::chrono::duration<double> mean_gap(1.0 / level_.rate);
    auto next = Clock::now();
    while (running_.load()) {
      const auto now = Clock::now();
      while (next <= now) {
        auto* call = new Call();
        {
          MutexLock lock(mu_);
          open_calls_.insert(call);
        }
        Issue(call, next);
        next += std::chrono::duration_cast<Clock::duration>(level_.poisson ? mean_gap * gap(rng) : mean_gap);
      }
      MutexLock lock(mu_);
      while (running_.load() && stop_cv_.WaitUntil(lock, next)) {
      }
    }
  }

  LoadTarget target_;
  LoadRecorder* recorder_;
  std::vector<pb::ModelInferRequest> requests_;
  std::vector<std::unique_ptr<pb::GRPCInferenceService::Stub>> stubs_;
  LoadLevel level_;
  std::vector<std::unique_ptr<Call>> slots_;
  std::atomic<bool> running_{false};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<size_t> next_{0};
  std::thread pacer_;
  Mutex mu_;
  CondVar stop_cv_, done_cv_;
  std::unordered_set<Call*> open_calls_ GUARDED_BY(mu_);
};

}  // namespace

namespace internal {

StatusOr<std::unique_ptr<InferenceClient>> ConnectGrpcClient(const ClientOptions& options) {
  VIGIL_ASSIGN_OR_RETURN(auto credentials, MakeCredentials(options));
  auto channel = MakeChannel(options, 0, credentials);
  VIGIL_RETURN_IF_ERROR(WaitConnected(*channel, options));
  return std::unique_ptr<InferenceClient>(new GrpcInferenceClient(options, std::move(channel)));
}

StatusOr<std::unique_ptr<LoadEngine>> MakeGrpcLoadEngine(const LoadTarget& target, LoadRecorder* recorder) {
  return std::unique_ptr<LoadEngine>(new GrpcLoadEngine(target, recorder));
}

}  // namespace internal
}  // namespace vigil
