// AccessPolicy: who may use the routes that change something. One policy
// for both frontends, so HTTP and gRPC can never disagree.
//
//   control  /v1/deployments changes, model load and unload (HTTP and gRPC):
//            "Authorization: Bearer <admin token>" when the server has one;
//            without one, only clients on loopback.
//   feedback /v1/feedback: the feedback token or the admin token when either
//            is set; with neither, only clients on loopback. Feedback decides
//            rollouts, so it is never open to the network by default.
//
// Tokens are compared in constant time. Thread-safe (immutable after
// construction).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace vigil {

class AccessPolicy {
 public:
  enum class Scope { kControl, kFeedback };

  // Who is asking: the Authorization header (or gRPC "authorization"
  // metadata) if any, and where from.
  struct Caller {
    std::optional<std::string_view> authorization;
    bool loopback = false;
    std::string_view peer;  // for messages
  };

  AccessPolicy() = default;
  AccessPolicy(std::string admin_token, std::string feedback_token)
      : admin_token_(std::move(admin_token)), feedback_token_(std::move(feedback_token)) {}

  // OK, Unauthenticated (no or wrong token) or PermissionDenied (not on
  // loopback when no token is configured), with a message that says what
  // the route needs.
  Status Check(Scope scope, const Caller& caller) const;

 private:
  std::string admin_token_;
  std::string feedback_token_;
};

// Equality that takes the same time wherever the strings first differ; the
// time depends only on the length of `secret`.
bool ConstantTimeEquals(std::string_view given, std::string_view secret);

// Whether an address is on loopback, IPv4-mapped IPv6 (::ffff:127.0.0.1) too.
bool IsLoopbackAddress(std::string_view address);

// Whether a gRPC peer string ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000",
// "unix:...") is on loopback.
bool IsLoopbackPeer(std::string_view grpc_peer);

// Reads a token from a file (--admin-token-file): the first line, without
// its line break or surrounding spaces; an empty token is an error.
StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace vigil
