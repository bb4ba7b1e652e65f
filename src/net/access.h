// AccessPolicy: who may use the routes that change something. One policy
// for both frontends, so HTTP and gRPC can never disagree.
//
//   control  /v1/deployments changes, model load and unload (HTTP and gRPC):
//            "Authorization: Bearer <admin token>" when the server has one;
//            without one, only clients whose address --admin-allow admits
//            (default: loopback).
//   feedback /v1/feedback: the feedback token or the admin token when either
//            is set; with neither, only clients --admin-allow admits.
//            Feedback decides rollouts, so it is never open to the network
//            by default.
//
// An --admin-allow given explicitly holds with tokens too: a change then
// needs both the token and an admitted address.
//
// Tokens are compared in constant time. Thread-safe (immutable after
// construction).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "net/address.h"

namespace vigil {

class AccessPolicy {
 public:
  enum class Scope { kControl, kFeedback };

  // Who is asking: the Authorization header (or gRPC "authorization"
  // metadata) if any, and where from.
  struct Caller {
    std::optional<std::string_view> authorization;
    bool loopback = false;     // a local socket counts as loopback
    std::string_view address;  // the peer's IP address; empty for a local socket
    std::string_view peer;     // for messages
  };

  AccessPolicy() = default;
  // `admin_allow`: the --admin-allow ranges; none given: loopback, and
  // tokens alone decide when set.
  AccessPolicy(std::string admin_token, std::string feedback_token,
               std::optional<std::vector<AddressRange>> admin_allow = std::nullopt);

  // OK, Unauthenticated (no or wrong token) or PermissionDenied (an address
  // --admin-allow does not admit), with a message that says what the route
  // needs.
  Status Check(Scope scope, const Caller& caller) const;

 private:
  bool Admitted(const Caller& caller) const;

  std::string admin_token_;
  std::string feedback_token_;
  std::vector<AddressRange> allow_ = LoopbackRanges();
  bool allow_given_ = false;
};

// Equality that takes the same time wherever the strings first differ; the
// time depends only on the length of `secret`.
bool ConstantTimeEquals(std::string_view given, std::string_view secret);

// Whether a gRPC peer string ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000",
// "unix:...") is on loopback.
bool IsLoopbackPeer(std::string_view grpc_peer);
// The IP address of a gRPC peer string; empty for a local socket or a form
// it does not know.
std::string_view GrpcPeerAddress(std::string_view grpc_peer);

// Reads a token from a file (--admin-token-file): the first line, without
// its line break or surrounding spaces; an empty token is an error.
StatusOr<std::string> ReadTokenFile(const std::string& path);

}  // namespace vigil
