// The client half of a TLS handshake on an Asio/Beast SSL stream, shared by
// the HTTP client and the load engine. Heavier than protocol/tls.h: include
// it only where a TLS stream is opened.
#pragma once

#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream_base.hpp>

#include <string>

#include "core/status.h"

namespace vigil {

// Sends SNI for `host`, requires the server's certificate to name it, and
// handshakes (blocking); the error names the server.
template <class SslStream>
Status ClientHandshake(SslStream& stream, const std::string& host, int port) {
  SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
  stream.set_verify_callback(boost::asio::ssl::host_name_verification(host));
  boost::system::error_code ec;
  stream.handshake(boost::asio::ssl::stream_base::client, ec);
  if (ec) return Unavailable("TLS handshake with " + host + ":" + std::to_string(port) + " failed: " + ec.message());
  return Status::Ok();
}

}  // namespace vigil
