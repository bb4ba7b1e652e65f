#include "net/access.h"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <fstream>

namespace vigil {
namespace {

// The token of "Bearer <token>", if that is what the header holds.
std::optional<std::string_view> BearerToken(std::string_view header) {
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() < kBearer.size() || header.substr(0, kBearer.size()) != kBearer) return std::nullopt;
  return header.substr(kBearer.size());
}

}  // namespace

bool ConstantTimeEquals(std::string_view given, std::string_view secret) {
  unsigned char diff = given.size() == secret.size() ? 0 : 1;
  for (size_t i = 0; i < secret.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= g ^ static_cast<unsigned char>(secret[i]);
  }
  return diff == 0;
}

AccessPolicy::AccessPolicy(std::string admin_token, std::string feedback_token,
                           std::optional<std::vector<AddressRange>> admin_allow)
    : admin_token_(std::move(admin_token)), feedback_token_(std::move(feedback_token)) {
  if (admin_allow) {
    allow_ = std::move(*admin_allow);
    allow_given_ = true;
  }
}

bool AccessPolicy::Admitted(const Caller& caller) const {
  if (caller.address.empty()) return caller.loopback;  // a local socket
  return InAddressRanges(allow_, caller.address);
}

Status AccessPolicy::Check(Scope scope, const Caller& caller) const {
  const bool feedback = scope == Scope::kFeedback;
  const char* what = feedback ? "feedback" : "control routes (deployment changes, model load and unload)";
  const bool has_token = !admin_token_.empty() || (feedback && !feedback_token_.empty());
  if (!has_token || allow_given_) {
    if (!Admitted(caller)) {
      if (allow_given_) {
        return PermissionDenied(std::string(what) + " are accepted only from the addresses --admin-allow admits (" +
                                std::string(caller.peer) + " is not among them)");
      }
      return PermissionDenied(std::string(what) + " are accepted only from loopback when the server has no " +
                              (feedback ? "--feedback-token or --admin-token" : "--admin-token") +
                              " or --admin-allow (" + std::string(caller.peer) + " is not loopback)");
    }
    if (!has_token) return Status::Ok();
  }
  const auto token = caller.authorization ? BearerToken(*caller.authorization) : std::nullopt;
  if (token) {
    // Both are compared whatever the first gives, so timing says nothing
    // about which one (if any) matched.
    const bool admin = !admin_token_.empty() && ConstantTimeEquals(*token, admin_token_);
    const bool fed = feedback && !feedback_token_.empty() && ConstantTimeEquals(*token, feedback_token_);
    if (admin || fed) return Status::Ok();
  }
  return Unauthenticated(std::string(what) + " need 'Authorization: Bearer <token>' (the server's " +
                         (feedback ? "--feedback-token or --admin-token" : "--admin-token") + ")");
}

std::string_view GrpcPeerAddress(std::string_view peer) {
  std::string_view host;
  if (peer.substr(0, 5) == "ipv4:") {
    host = peer.substr(5);
    return host.substr(0, host.rfind(':'));
  }
  if (peer.substr(0, 5) == "ipv6:") {
    host = peer.substr(5);
    if (host.empty() || host.front() != '[') return {};
    const size_t close = host.find(']');
    if (close == std::string_view::npos) return {};
    host = host.substr(1, close - 1);
    // "%25" is a percent-encoded zone id separator.
    if (const size_t zone = host.find('%'); zone != std::string_view::npos) host = host.substr(0, zone);
    return host;
  }
  return {};
}

bool IsLoopbackPeer(std::string_view peer) {
  if (peer.substr(0, 5) == "unix:") return true;  // a local socket
  const std::string_view host = GrpcPeerAddress(peer);
  return !host.empty() && IsLoopbackAddress(host);
}

StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return InvalidArgument("cannot read the token file " + path);
  std::string line;
  std::getline(in, line);
  const size_t begin = line.find_first_not_of(" \t\r");
  const size_t end = line.find_last_not_of(" \t\r");
  if (begin == std::string::npos)
    return InvalidArgument("the token file " + path + " holds no token on its first line");
  return line.substr(begin, end - begin + 1);
}

}  // namespace vigil
