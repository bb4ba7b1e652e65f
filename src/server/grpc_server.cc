#include "server/grpc_server.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstring>
#include <functional>

#include "core/logging.h"
#include "grpc_predict_v2.grpc.pb.h"
#include "net/access.h"
#include "net/control_workers.h"
#include "protocol/oip_grpc.h"
#include "protocol/oip_json.h"
#include "protocol/tls.h"
#include "routing/inference_service.h"
#include "server/server_state.h"
#include "server/status_codes.h"

namespace vigil {
namespace {

namespace pb = ::inference;

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(GrpcCodeFor(s.code())), s.message());
}

// One ModelInfer call. A client that cancels (or whose deadline passes)
// marks the request so the scheduler drops it without running it, and the
// model's workers are woken to free its queue slot at once.
class InferReactor final : public grpc::ServerUnaryReactor {
 public:
  const CancelToken& cancel() const { return cancel_; }
  // The inference service registered what to do (wake the scheduler that
  // holds the request), whatever name the call used: model or endpoint.
  void OnCancel() override { cancel_.Cancel(); }
  void OnDone() override { delete this; }

 private:
  const CancelToken cancel_ = CancelToken::Create();
};

// Who is calling, as the access policy sees it (valid while `ctx` lives).
AccessPolicy::Caller CallerOf(grpc::CallbackServerContext* ctx, const std::string& peer) {
  AccessPolicy::Caller caller;
  const auto& md = ctx->client_metadata();
  if (auto it = md.find("authorization"); it != md.end())
    caller.authorization = std::string_view(it->second.data(), it->second.size());
  caller.loopback = IsLoopbackPeer(peer);
  caller.address = GrpcPeerAddress(peer);
  caller.peer = peer;
  return caller;
}

class Service final : public pb::GRPCInferenceService::CallbackService {
 public:
  Service(InferenceService& service, ModelRepository& repository, ServerState& state, const AccessPolicy& access,
          ControlWorkers& control)
      : service_(service), repository_(repository), state_(state), access_(access), control_(control) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* ctx, const pb::ServerLiveRequest*,
                                       pb::ServerLiveResponse* resp) override {
    resp->set_live(true);
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx, const pb::ServerReadyRequest*,
                                        pb::ServerReadyResponse* resp) override {
    resp->set_ready(state_.CheckReady(repository_).ok());
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx, const pb::ModelReadyRequest* req,
                                       pb::ModelReadyResponse* resp) override {
    auto target = service_.Resolve(req->name(), req->version());
    if (!target.ok()) return Done(ctx, ToGrpc(target.status()));
    auto pinned = repository_.Acquire(target->model, target->version);
    // Unknown models are NOT_FOUND; known ones answer ready true or false.
    if (!pinned.ok()) {
      auto info = repository_.Find(target->model);
      if (!info.ok() && info.status().code() == StatusCode::kNotFound) return Done(ctx, ToGrpc(info.status()));
    }
    resp->set_ready(pinned.ok());
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* ctx, const pb::ServerMetadataRequest*,
                                           pb::ServerMetadataResponse* resp) override {
    resp->set_name("vigil");
    resp->set_version(VIGIL_VERSION);
    for (const char* e : {"binary_tensor_data", "model_repository", "statistics", "model_configuration"}) {
      resp->add_extensions(e);
    }
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* ctx, const pb::ModelMetadataRequest* req,
                                          pb::ModelMetadataResponse* resp) override {
    auto info = service_.Find(req->name(), req->version());
    if (!info.ok()) return Done(ctx, ToGrpc(info.status()));
    const vigil::ModelConfig& c = *info->config;
    resp->set_name(req->name());
    for (int64_t rv : info->ready_versions) resp->add_versions(std::to_string(rv));
    resp->set_platform(std::string(BackendPlatform(c.backend)));
    auto add = [&](const std::vector<TensorSpec>& specs, auto* list) {
      for (const auto& s : specs) {
        auto* t = list->Add();
        t->set_name(s.name);
        t->set_datatype(std::string(DataTypeName(s.datatype)));
        if (c.max_batch_size > 0) t->add_shape(-1);
        for (int64_t d : s.dims) t->add_shape(d);
      }
    };
    add(c.inputs, resp->mutable_inputs());
    add(c.outputs, resp->mutable_outputs());
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx, const pb::ModelInferRequest* req,
                                       pb::ModelInferResponse* resp) override {
    auto* reactor = new InferReactor();
    InferCall call;
    call.cancel = reactor->cancel();
    bool raw = false;
    if (Status s = DecodeGrpcRequest(*req, call, raw); !s.ok()) {
      // Answered for its target first: an unknown name is NOT_FOUND whatever
      // the request holds (only refusals pay for this lookup).
      if (auto target = service_.Find(req->model_name(), req->model_version()); !target.ok()) s = target.status();
      reactor->Finish(ToGrpc(s));
      return reactor;
    }
    // The client's deadline is the request's: one whose deadline passes in
    // the queue is never executed.
    const auto deadline = ctx->deadline();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      const auto left = deadline - std::chrono::system_clock::now();
      if (left <= std::chrono::system_clock::duration::zero()) {
        reactor->Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                     "the client's deadline passed before the request was queued"));
        return reactor;
      }
      call.deadline = std::chrono::steady_clock::now() + std::chrono::duration_cast<SteadyTime::duration>(left);
    }
    // Read by endpoint routing inside Infer, while the call is alive.
    call.header = [ctx](std::string_view name) -> std::optional<std::string> {
      const auto& md = ctx->client_metadata();
      auto it = md.find(grpc::string_ref(name.data(), name.size()));
      if (it == md.end()) return std::nullopt;
      return std::string(it->second.data(), it->second.size());
    };
    service_.Infer(std::move(call), [ctx, reactor, resp, raw](const Status& s, InferReply&& reply) {
      if (!s.ok()) {
        // A shed by an endpoint's ladder: when to come back, and the rung, as trailing metadata.
        for (const char* key : {"vigil.retry_after_s", "vigil.rung"}) {
          auto it = reply.parameters.find(key);
          if (it != reply.parameters.end() && std::holds_alternative<int64_t>(it->second))
            ctx->AddTrailingMetadata(std::string(key) == "vigil.rung" ? "vigil-rung" : "retry-after",
                                     std::to_string(std::get<int64_t>(it->second)));
        }
        return reactor->Finish(ToGrpc(s));
      }
      EncodeGrpcReply(std::move(reply), raw, resp);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* ctx, const pb::ModelConfigRequest* req,
                                        pb::ModelConfigResponse* resp) override {
    auto v = ParseVersionString(req->version());
    if (!v.ok()) return Done(ctx, ToGrpc(v.status()));
    auto pinned = repository_.Acquire(req->name(), *v);
    if (!pinned.ok()) return Done(ctx, ToGrpc(pinned.status()));
    const vigil::ModelConfig& c = (*pinned)->config();
    auto* out = resp->mutable_config();
    out->set_name(c.name);
    out->set_platform(std::string(BackendPlatform(c.backend)));
    out->set_backend(std::string(BackendKindName(c.backend)));
    out->set_max_batch_size(static_cast<int32_t>(c.max_batch_size));
    for (const auto& s : c.inputs) {
      auto* in = out->add_input();
      in->set_name(s.name);
      in->set_data_type(TritonType(s.datatype));
      for (int64_t d : s.dims) in->add_dims(d);
    }
    for (const auto& s : c.outputs) {
      auto* o = out->add_output();
      o->set_name(s.name);
      o->set_data_type(TritonType(s.datatype));
      for (int64_t d : s.dims) o->add_dims(d);
    }
    auto* group = out->add_instance_group();
    group->set_name(c.name);
    group->set_count(static_cast<int32_t>(c.instances));
    group->set_kind(pb::ModelInstanceGroup::KIND_CPU);
    auto* db = out->mutable_dynamic_batching();
    for (int64_t p : c.dynamic_batching.preferred_batch_sizes) db->add_preferred_batch_size(static_cast<int32_t>(p));
    db->set_max_queue_delay_microseconds(static_cast<uint64_t>(c.dynamic_batching.max_queue_delay_us));
    db->mutable_default_queue_policy()->set_default_timeout_microseconds(
        static_cast<uint64_t>(c.dynamic_batching.default_timeout_us));
    db->mutable_default_queue_policy()->set_max_queue_size(static_cast<uint32_t>(c.dynamic_batching.max_queue_size));
    auto* vp = out->mutable_version_policy();
    switch (c.version_policy.kind) {
      case VersionPolicy::Kind::kLatest:
        vp->mutable_latest()->set_num_versions(static_cast<uint32_t>(c.version_policy.latest));
        break;
      case VersionPolicy::Kind::kAll:
        vp->mutable_all();
        break;
      case VersionPolicy::Kind::kSpecific:
        for (int64_t sv : c.version_policy.specific) vp->mutable_specific()->add_versions(sv);
        break;
    }
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* ctx, const pb::ModelStatisticsRequest* req,
                                            pb::ModelStatisticsResponse* resp) override {
    auto v = ParseVersionString(req->version());
    if (!v.ok()) return Done(ctx, ToGrpc(v.status()));
    auto pinned = repository_.AcquireAll(req->name(), *v);
    if (!pinned.ok()) return Done(ctx, ToGrpc(pinned.status()));
    auto duration = [](pb::StatisticDuration* d, uint64_t count, uint64_t ns) {
      d->set_count(count);
      d->set_ns(ns);
    };
    for (const auto& mv : *pinned) {
      const SchedulerStats st = mv->Stats();
      auto* m = resp->add_model_stats();
      m->set_name(mv->config().name);
      m->set_version(std::to_string(mv->version()));
      m->set_last_inference(st.last_inference_ms);
      m->set_inference_count(st.inference_count);
      m->set_execution_count(st.execution_count);
      auto* is = m->mutable_inference_stats();
      duration(is->mutable_success(), st.success_count, st.success_ns);
      duration(is->mutable_fail(), st.fail_count, st.fail_ns);
      duration(is->mutable_queue(), st.queue_count, st.queue_ns);
      duration(is->mutable_compute_infer(), st.compute_count, st.compute_ns);
      for (const auto& [size, b] : st.batch_stats) {
        auto* bs = m->add_batch_stats();
        bs->set_batch_size(static_cast<uint64_t>(size));
        duration(bs->mutable_compute_infer(), b.count, b.compute_ns);
      }
    }
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* ctx, const pb::RepositoryIndexRequest* req,
                                            pb::RepositoryIndexResponse* resp) override {
    for (const auto& row : repository_.Index()) {
      if (req->ready() && row.state != VersionState::kReady) continue;
      auto* m = resp->add_models();
      m->set_name(row.model);
      m->set_version(row.version);
      m->set_state(std::string(VersionStateName(row.state)));
      m->set_reason(row.reason);
    }
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* RepositoryModelLoad(grpc::CallbackServerContext* ctx,
                                                const pb::RepositoryModelLoadRequest* req,
                                                pb::RepositoryModelLoadResponse*) override {
    std::optional<std::string> config;
    for (const auto& [key, value] : req->parameters()) {
      if (key != "config" || value.parameter_choice_case() != pb::ModelRepositoryParameter::kStringParam) {
        return Done(ctx, ToGrpc(InvalidArgument("unknown load parameter '" + key +
                                                "'; the only one is \"config\" (string_param, YAML or JSON)")));
      }
      config = value.string_param();
    }
    return Control(ctx, "load", req->model_name(), [this, name = req->model_name(), config = std::move(config)] {
      return repository_.LoadModel(name, config);
    });
  }

  grpc::ServerUnaryReactor* RepositoryModelUnload(grpc::CallbackServerContext* ctx,
                                                  const pb::RepositoryModelUnloadRequest* req,
                                                  pb::RepositoryModelUnloadResponse*) override {
    return Control(ctx, "unload", req->model_name(),
                   [this, name = req->model_name()] { return repository_.UnloadModel(name); });
  }

 private:
  // A control call: authorised, then run on a control thread (loading can
  // take a while and must not hold a gRPC thread), answered from there.
  grpc::ServerUnaryReactor* Control(grpc::CallbackServerContext* ctx, const char* action, const std::string& model,
                                    std::function<Status()> work) {
    const std::string peer = ctx->peer();
    if (Status s = access_.Check(AccessPolicy::Scope::kControl, CallerOf(ctx, peer)); !s.ok()) {
      spdlog::info("event=repository_{}_refused model={} peer={} protocol=grpc error={}", action, LogValue(model),
                   LogValue(peer), LogValue(s.message()));
      return Done(ctx, ToGrpc(s));
    }
    auto* reactor = ctx->DefaultReactor();
    auto run = [reactor, action, model, peer, work = std::move(work)] {
      const Status s = work();
      spdlog::info("event=repository_{} model={} peer={} protocol=grpc result={}", action, LogValue(model),
                   LogValue(peer), LogValue(s.ok() ? "ok" : s.message()));
      reactor->Finish(ToGrpc(s));
    };
    if (!control_.Post(run)) {
      reactor->Finish(ToGrpc(Overloaded("the server's control threads are busy (their queue is full); retry later")));
    }
    return reactor;
  }

  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const grpc::Status& status) {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  InferenceService& service_;
  ModelRepository& repository_;
  ServerState& state_;
  const AccessPolicy& access_;
  ControlWorkers& control_;
};

}  // namespace

struct GrpcServer::Impl {
  std::unique_ptr<Service> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Create(Options options, InferenceService& service,
                                                         ModelRepository& repository, ServerState& state,
                                                         const AccessPolicy& access, ControlWorkers& control) {
  TuneGrpcRuntime();
  auto impl = std::make_unique<Impl>();
  impl->service = std::make_unique<Service>(service, repository, state, access, control);
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    VIGIL_ASSIGN_OR_RETURN(pair.cert_chain, ReadPemFile(options.tls_cert, "--tls-cert"));
    VIGIL_ASSIGN_OR_RETURN(pair.private_key, ReadPemFile(options.tls_key, "--tls-key"));
    ssl.pem_key_cert_pairs.push_back(std::move(pair));
    if (!options.tls_client_ca.empty()) {
      VIGIL_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPemFile(options.tls_client_ca, "--tls-client-ca"));
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    credentials = grpc::SslServerCredentials(ssl);
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.host + ":" + std::to_string(options.port), credentials, &impl->port);
  builder.RegisterService(impl->service.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<size_t>(options.max_message_bytes, INT32_MAX)));
  impl->server = builder.BuildAndStart();
  if (!impl->server || impl->port == 0) {
    return Unavailable("cannot listen for gRPC on " + options.host + ":" + std::to_string(options.port));
  }
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(impl)));
}

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GrpcServer::~GrpcServer() { Shutdown(0); }

int GrpcServer::port() const { return impl_->port; }

void GrpcServer::Shutdown(double timeout_s) {
  if (!impl_->server) return;
  impl_->server->Shutdown(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace vigil
