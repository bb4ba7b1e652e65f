// The HTTP load engine: one Asio event loop per client thread, each owning
// a share of the keep-alive connections. Request bytes (head and body) are
// encoded once; a send is one async_write of a pre-built buffer and one
// async_read into a Beast response parser.
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <poll.h>

#include <deque>
#include <optional>
#include <random>
#include <thread>

#include "client/load.h"
#include "protocol/tls.h"
#include "protocol/tls_stream.h"

namespace vigil::internal {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

std::string EncodeWire(const LoadTarget& target, const InferCall& call) {
  InferCall c = call;
  if (target.client.binary) {
    c.binary_output = true;
    for (auto& o : c.outputs) o.binary = true;
  }
  EncodedBody enc = EncodeInferRequest(c, target.client.binary);
  std::string path = "/v2/models/" + target.model;
  if (!target.version.empty()) path += "/versions/" + target.version;
  std::string wire = "POST " + path + "/infer HTTP/1.1\r\nHost: " + target.client.host + "\r\n";
  if (enc.header_length) {
    wire += "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: " +
            std::to_string(*enc.header_length) + "\r\n";
  } else {
    wire += "Content-Type: application/json\r\n";
  }
  wire += "Content-Length: " + std::to_string(enc.body.size()) + "\r\n\r\n";
  wire += enc.body;
  return wire;
}

std::string ServerError(const std::string& body) { return ErrorMessageOf(body).value_or(body.substr(0, 200)); }

template <bool kTls>
class HttpLoadEngine;

template <bool kTls>
struct Worker;

// One keep-alive connection; `kTls`: HTTPS (the stream is made afresh for
// every connect, as a TLS session cannot be reused after it closed).
template <bool kTls>
struct Conn {
  using Stream = std::conditional_t<kTls, net::ssl::stream<tcp::socket>, tcp::socket>;
  Conn(net::io_context& ioc, Worker<kTls>* owner) : worker(owner), ioc(ioc), retry(ioc), deadline(ioc) {}
  Worker<kTls>* worker;
  net::io_context& ioc;
  std::optional<Stream> socket;
  net::steady_timer retry;
  net::steady_timer deadline;  // of the request in flight (LoadTarget::timeout)
  bool timed_out = false;      // the deadline closed the connection
  uint64_t sent = 0;           // requests sent: a deadline is for one of them
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  Clock::time_point scheduled;
  size_t sample = 0;  // the one in flight
  bool open = false;

  tcp::socket& Socket() {
    if constexpr (kTls) {
      return socket->next_layer();
    } else {
      return *socket;
    }
  }
  void Close() {
    boost::system::error_code ignored;
    if (socket) Socket().close(ignored);
    open = false;
  }
};

template <bool kTls>
struct Worker {
  HttpLoadEngine<kTls>* engine = nullptr;
  net::io_context ioc{1};
  net::steady_timer timer{ioc};
  std::vector<std::unique_ptr<Conn<kTls>>> conns;
  std::vector<Conn<kTls>*> idle;
  std::deque<Clock::time_point> backlog;
  size_t next_sample = 0;
  int max_conns = 0;
  // Open loop.
  Clock::time_point next_arrival;
  std::chrono::duration<double> mean_gap{0};
  bool poisson = false;
  std::mt19937_64 rng;
  std::thread thread;
};

template <bool kTls>
class HttpLoadEngine final : public LoadEngine {
  using Conn = internal::Conn<kTls>;
  using Worker = internal::Worker<kTls>;

 public:
  HttpLoadEngine(const LoadTarget& target, LoadRecorder* recorder, std::shared_ptr<net::ssl::context> tls)
      : target_(target), recorder_(recorder), tls_(std::move(tls)) {
    for (const auto& call : target.samples) wire_.push_back(EncodeWire(target, call));
  }
  ~HttpLoadEngine() override { Stop(std::chrono::milliseconds(0)); }

  Status Start(const LoadLevel& level) override {
    net::io_context resolver_ioc;
    tcp::resolver resolver(resolver_ioc);
    boost::system::error_code ec;
    auto results = resolver.resolve(target_.client.host, std::to_string(target_.client.port), ec);
    if (ec || results.empty()) return Unavailable("cannot resolve " + target_.client.host + ": " + ec.message());
    endpoint_ = results.begin()->endpoint();

    const int threads = level.concurrency > 0 ? std::min(DefaultClientThreads(target_.threads), level.concurrency)
                                              : DefaultClientThreads(target_.threads);
    for (int i = 0; i < threads; ++i) {
      auto w = std::make_unique<Worker>();
      w->engine = this;
      w->next_sample = static_cast<size_t>(i) * 7919;
      w->max_conns = std::max(1, target_.max_connections / threads);
      w->rng.seed(0x5eed + static_cast<uint64_t>(i));
      workers_.push_back(std::move(w));
    }
    level_ = level;
    running_.store(true);
    const auto now = Clock::now();
    if (level.concurrency > 0) {
      for (int i = 0; i < level.concurrency; ++i) {
        Worker& w = *workers_[static_cast<size_t>(i) % workers_.size()];
        w.conns.push_back(std::make_unique<Conn>(w.ioc, &w));
        VIGIL_RETURN_IF_ERROR(Open(*w.conns.back()));
      }
      for (auto& w : workers_) {
        for (auto& c : w->conns) net::post(w->ioc, [this, conn = c.get(), now] { Send(conn, now); });
      }
    } else {
      const double per_thread_rate = level.rate / static_cast<double>(threads);
      for (size_t i = 0; i < workers_.size(); ++i) {
        Worker& w = *workers_[i];
        w.poisson = level.poisson;
        w.mean_gap = std::chrono::duration<double>(1.0 / per_thread_rate);
        // Fixed-rate threads interleave instead of firing together.
        w.next_arrival = now + std::chrono::duration_cast<Clock::duration>(
                                   w.mean_gap * (static_cast<double>(i) / static_cast<double>(threads)));
        for (int k = 0; k < std::min(w.max_conns, 4); ++k) {
          w.conns.push_back(std::make_unique<Conn>(w.ioc, &w));
          VIGIL_RETURN_IF_ERROR(Open(*w.conns.back()));
          w.idle.push_back(w.conns.back().get());
        }
        net::post(w.ioc, [this, &w] { Tick(w); });
      }
    }
    for (auto& w : workers_) {
      w->thread = std::thread([&ioc = w->ioc] {
        auto guard = net::make_work_guard(ioc);
        ioc.run();
      });
    }
    return Status::Ok();
  }

  void Stop(std::chrono::milliseconds grace) override {
    if (workers_.empty()) return;
    running_.store(false);
    for (auto& w : workers_) net::post(w->ioc, [&w] { w->timer.cancel(); });
    const auto deadline = Clock::now() + grace;
    while (in_flight_.load() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (auto& w : workers_) w->ioc.stop();
    for (auto& w : workers_) {
      if (w->thread.joinable()) w->thread.join();
    }
    workers_.clear();
    in_flight_.store(0);
  }

  int64_t InFlight() const override { return in_flight_.load(); }

  Status SetRate(double rate) override {
    if (level_.concurrency > 0 || workers_.empty()) return FailedPrecondition("SetRate needs a running open loop");
    if (!(rate > 0)) return InvalidArgument("a rate must be positive");
    const auto gap = std::chrono::duration<double>(static_cast<double>(workers_.size()) / rate);
    for (auto& w : workers_) {
      net::post(w->ioc, [this, w = w.get(), gap] {
        // The next arrival moves with the new gap, so a higher rate starts at
        // once; re-arming the timer cancels the wait for the old one.
        w->next_arrival = std::min(w->next_arrival, Clock::now() + std::chrono::duration_cast<Clock::duration>(gap));
        w->mean_gap = gap;
        Tick(*w);
      });
    }
    level_.rate = rate;
    return Status::Ok();
  }

 private:
  Status Open(Conn& c) {
    boost::system::error_code ec;
    c.Close();
    if constexpr (kTls) {
      c.socket.emplace(c.ioc, *tls_);
    } else {
      c.socket.emplace(c.ioc);
    }
    if (!Connect(c.Socket(), ec)) {
      return Unavailable("cannot connect to " + target_.client.host + ":" + std::to_string(target_.client.port) + ": " +
                         ec.message());
    }
    c.Socket().set_option(tcp::no_delay(true), ec);
    if constexpr (kTls) {
      VIGIL_RETURN_IF_ERROR(ClientHandshake(*c.socket, target_.client.host, target_.client.port));
    }
    c.buffer.clear();
    c.open = true;
    return Status::Ok();
  }

  // A connect bounded by the request timeout: a server whose listen queue
  // is full drops the SYN, and a plain connect() would retry for minutes.
  bool Connect(tcp::socket& s, boost::system::error_code& ec) {
    s.open(endpoint_.protocol(), ec);
    if (ec) return false;
    s.non_blocking(true, ec);
    s.connect(endpoint_, ec);
    if (ec == net::error::in_progress || ec == net::error::would_block) {
      pollfd p{s.native_handle(), POLLOUT, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(target_.timeout.count()));
      if (ready == 0) {
        ec = net::error::timed_out;
        return false;
      }
      int error = 0;
      socklen_t len = sizeof(error);
      ::getsockopt(s.native_handle(), SOL_SOCKET, SO_ERROR, &error, &len);
      ec = ready < 0 ? boost::system::error_code(errno, boost::system::system_category())
                     : boost::system::error_code(error, boost::system::system_category());
    }
    if (ec) return false;
    s.non_blocking(false, ec);  // the TLS handshake below is synchronous
    return !ec;
  }

  void Send(Conn* c, Clock::time_point scheduled) {
    if (!c->open) {
      if (Status s = Open(*c); !s.ok()) {
        recorder_->Error("connection", s.message());
        // Back off, then try again (closed loop) or take the next arrival.
        c->retry.expires_after(std::chrono::milliseconds(50));
        c->retry.async_wait([this, c](boost::system::error_code ec) {
          if (!ec) Next(c);
        });
        return;
      }
    }
    Worker& w = *c->worker;
    c->scheduled = scheduled;
    c->sample = w.next_sample++ % wire_.size();
    const std::string& wire = wire_[c->sample];
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    // A request unanswered within the timeout fails, and its connection
    // closes (the pending write or read then completes with an error).
    c->timed_out = false;
    c->deadline.expires_after(target_.timeout);
    c->deadline.async_wait([c, request = ++c->sent](boost::system::error_code ec) {
      if (ec || !c->open || request != c->sent) return;
      c->timed_out = true;
      c->Close();
    });
    net::async_write(*c->socket, net::buffer(wire), [this, c](boost::system::error_code ec, size_t) {
      if (ec) return Done(c, ec);
      c->parser.emplace();
      c->parser->body_limit(std::numeric_limits<uint64_t>::max());
      http::async_read(*c->socket, c->buffer, *c->parser,
                       [this, c](boost::system::error_code ec, size_t) { Done(c, ec); });
    });
  }

  void Done(Conn* c, boost::system::error_code ec) {
    const auto now = Clock::now();
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    c->deadline.cancel();
    const int64_t latency_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - c->scheduled).count();
    if (c->timed_out) {
      recorder_->Error("timeout", "no answer within " + std::to_string(target_.timeout.count()) + " ms (--timeout)");
      if (recorder_->observing()) recorder_->Reply(c->sample, latency_ns, 0, "");
      c->Close();
    } else if (ec) {
      if (running_.load()) {
        recorder_->Error("connection", ec.message());
        if (recorder_->observing()) recorder_->Reply(c->sample, latency_ns, 0, "");
      }
      c->Close();
    } else {
      const auto& res = c->parser->get();
      if (recorder_->observing()) recorder_->Reply(c->sample, latency_ns, res.result_int(), res.body());
      if (res.result_int() == 200) {
        recorder_->Success(std::chrono::duration_cast<std::chrono::nanoseconds>(now - c->scheduled).count());
      } else {
        recorder_->Error("HTTP " + std::to_string(res.result_int()), ServerError(res.body()));
      }
      if (!res.keep_alive()) c->Close();
    }
    Next(c);
  }

  // A connection is free: send the next request, if any is due.
  void Next(Conn* c) {
    if (!running_.load(std::memory_order_relaxed)) return;
    if (level_.concurrency > 0) return Send(c, Clock::now());
    Worker& w = *c->worker;
    if (!w.backlog.empty()) {
      const auto t = w.backlog.front();
      w.backlog.pop_front();
      return Send(c, t);
    }
    w.idle.push_back(c);
  }

  void Tick(Worker& w) {
    if (!running_.load()) return;
    const auto now = Clock::now();
    std::exponential_distribution<double> gap(1.0);
    while (w.next_arrival <= now) {
      Arrive(w, w.next_arrival);
      const auto step = w.poisson ? w.mean_gap * gap(w.rng) : w.mean_gap;
      w.next_arrival += std::chrono::duration_cast<Clock::duration>(step);
    }
    w.timer.expires_at(w.next_arrival);
    w.timer.async_wait([this, &w](boost::system::error_code ec) {
      if (!ec) Tick(w);
    });
  }

  void Arrive(Worker& w, Clock::time_point scheduled) {
    if (!w.idle.empty()) {
      Conn* c = w.idle.back();
      w.idle.pop_back();
      return Send(c, scheduled);
    }
    if (static_cast<int>(w.conns.size()) < w.max_conns) {
      w.conns.push_back(std::make_unique<Conn>(w.ioc, &w));
      return Send(w.conns.back().get(), scheduled);
    }
    // Every connection is busy: the request waits here, and its wait counts.
    w.backlog.push_back(scheduled);
  }

  LoadTarget target_;
  LoadRecorder* recorder_;
  std::shared_ptr<net::ssl::context> tls_;  // with kTls
  std::vector<std::string> wire_;
  tcp::endpoint endpoint_;
  LoadLevel level_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> running_{false};
  std::atomic<int64_t> in_flight_{0};
};

}  // namespace

StatusOr<std::unique_ptr<LoadEngine>> MakeHttpLoadEngine(const LoadTarget& target, LoadRecorder* recorder) {
  const ClientOptions& o = target.client;
  if (!o.tls) return std::unique_ptr<LoadEngine>(new HttpLoadEngine<false>(target, recorder, nullptr));
  VIGIL_ASSIGN_OR_RETURN(auto tls, MakeClientTlsContext({o.tls_ca, o.tls_cert, o.tls_key}));
  return std::unique_ptr<LoadEngine>(new HttpLoadEngine<true>(target, recorder, std::move(tls)));
}

}  // namespace vigil::internal
