// HTTP requests as Vigil reads them: Boost.Beast's parser with the server's
// limits, fed in pieces whose size the first byte chooses, then every parsed
// request handed to the REST routes (an empty model repository, no store),
// so routing, path decoding, header parsing and body decoding all run.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <cstdint>
#include <filesystem>

#include "core/logging.h"
#include "monitoring/serving_metrics.h"
#include "net/access.h"
#include "net/control_workers.h"
#include "repository/model_repository.h"
#include "rollout/serving_benchmark_world.h"
#include "rollout/serving_rollout_world.h"
#include "routing/deployments.h"
#include "routing/inference_service.h"
#include "routing/serving_world.h"
#include "server/monitoring_api.h"
#include "server/rest_api.h"
#include "store/store.h"

namespace {

namespace http = boost::beast::http;

// The REST frontend with every handler it routes to, as the server wires it
// (no store; control routes run on the calling thread, so a run is
// deterministic).
struct Server {
  vigil::MetricsRegistry registry;
  vigil::ServingMetrics metrics{registry};
  vigil::ServerState state;
  vigil::AccessPolicy access{"t0ken", ""};
  std::unique_ptr<vigil::ModelRepository> repository;
  std::unique_ptr<vigil::Deployments> deployments;
  std::unique_ptr<vigil::InferenceService> service;
  std::unique_ptr<vigil::DriftStore> drift_store = vigil::MemoryDriftStore();
  std::unique_ptr<vigil::AlertStore> alert_store = vigil::MemoryAlertStore();
  vigil::AlertTracker alerts{*alert_store, {}};
  std::unique_ptr<vigil::ServingWorld> world;
  std::unique_ptr<vigil::MonitorLoop> loop;
  std::unique_ptr<vigil::MonitoringApi> monitoring;
  std::unique_ptr<vigil::ServingRolloutWorld> rollout_world;
  std::unique_ptr<vigil::RolloutStore> rollout_store = vigil::MemoryRolloutStore();
  std::unique_ptr<vigil::RolloutController> rollouts;
  std::unique_ptr<vigil::ServingBenchmarkWorld> benchmark_world;
  std::unique_ptr<vigil::Benchmarker> benchmarks;
  std::unique_ptr<vigil::AdminApi> admin;
  vigil::ControlWorkers control{{.threads = 0}};
  std::unique_ptr<vigil::RestApi> api;

  Server() {
    const auto root = std::filesystem::temp_directory_path() / "vigil_fuzz_empty_repository";
    std::filesystem::create_directories(root);
    vigil::ModelRepository::Options o;
    o.root = root;
    repository = std::move(vigil::ModelRepository::Create(o)).value();
    deployments = std::make_unique<vigil::Deployments>(vigil::Deployments::Options{});
    service =
        std::move(vigil::InferenceService::Create(*repository, {.metrics = &metrics, .deployments = deployments.get()}))
            .value();
    world = std::make_unique<vigil::ServingWorld>(*repository, *deployments);
    loop = std::move(vigil::MonitorLoop::Create({.world = world.get(),
                                                 .metrics = &metrics,
                                                 .alerts = &alerts,
                                                 .drift_store = drift_store.get(),
                                                 .background = false}))
               .value();
    monitoring =
        std::make_unique<vigil::MonitoringApi>(vigil::MonitoringApi::Options{.repository = repository.get(),
                                                                             .deployments = deployments.get(),
                                                                             .loop = loop.get(),
                                                                             .alerts = &alerts,
                                                                             .drift_store = drift_store.get()});
    rollout_world = std::make_unique<vigil::ServingRolloutWorld>(*deployments, nullptr);
    rollouts = std::move(vigil::RolloutController::Create(
                             {.world = rollout_world.get(), .store = rollout_store.get(), .background = false}))
                   .value();
    benchmark_world = std::make_unique<vigil::ServingBenchmarkWorld>(*deployments, *service);
    benchmarks = std::move(vigil::Benchmarker::Create({.world = benchmark_world.get(),
                                                       .feedback = nullptr,
                                                       .store = rollout_store.get(),
                                                       .alerts = &alerts,
                                                       .clock = nullptr,
                                                       .benchmark = {},
                                                       .background = false}))
                     .value();
    admin = std::make_unique<vigil::AdminApi>(*deployments, *rollouts, *benchmarks, access, nullptr);
    state.ready = true;
    api = std::move(vigil::RestApi::Create({.service = service.get(),
                                            .repository = repository.get(),
                                            .metrics = &metrics,
                                            .state = &state,
                                            .access = &access,
                                            .admin = admin.get(),
                                            .monitoring = monitoring.get(),
                                            .control = &control}))
              .value();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Server server;
  if (size < 1) return 0;
  const size_t piece = 1 + data[0] % 64;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t offset = 0;   // of the input, read into `buffer` so far
  std::string buffer;  // read and not yet consumed by a parser, as the server's
  for (int requests = 0; requests < 16; ++requests) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    parser.header_limit(64 * 1024);
    boost::beast::error_code ec;
    while (!parser.is_done()) {
      const bool more = offset < input.size();
      if (more) {
        buffer.append(input.substr(offset, piece));
        offset = std::min(input.size(), offset + piece);
      }
      if (buffer.empty()) return 0;  // as the server, never offer the parser nothing
      const size_t used = parser.put(boost::asio::buffer(buffer), ec);
      buffer.erase(0, used);
      if (ec == http::error::need_more) {
        ec = {};
        if (!more && used == 0) return 0;  // the input ends inside this request
        continue;
      }
      if (ec) return 0;
      if (!more && used == 0 && !parser.is_done()) return 0;
    }
    vigil::RequestInfo info{"127.0.0.1:1", "127.0.0.1", true};
    spdlog::set_level(spdlog::level::off);
    server.api->Handle(parser.release(), info, [](vigil::HttpResponse&&) {});
    if (offset >= input.size() && buffer.empty()) return 0;
  }
  return 0;
}
