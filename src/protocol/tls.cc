#include "protocol/tls.h"

#include <boost/asio/ssl/context.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fstream>
#include <sstream>

namespace vigil {
namespace {

namespace ssl = boost::asio::ssl;

// "what 'path': reason" from an Asio error that OpenSSL raised.
Status FileError(const char* what, const std::string& path, const boost::system::error_code& ec) {
  std::string reason = ec.message();
  if (const unsigned long e = ERR_get_error(); e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    reason = buf;
  }
  ERR_clear_error();
  return InvalidArgument(std::string(what) + " '" + path + "': " + reason);
}

std::shared_ptr<ssl::context> BaseContext(ssl::context::method method) {
  auto ctx = std::make_shared<ssl::context>(method);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  return ctx;
}

}  // namespace

StatusOr<std::string> ReadPemFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument(std::string(what) + " '" + path + "': cannot read it");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().find("-----BEGIN ") == std::string::npos)
    return InvalidArgument(std::string(what) + " '" + path + "': not a PEM file");
  return ss.str();
}

StatusOr<std::shared_ptr<ssl::context>> MakeServerTlsContext(const TlsServerFiles& files) {
  if (files.cert.empty() || files.key.empty()) {
    return InvalidArgument("TLS needs both --tls-cert and --tls-key");
  }
  auto ctx = BaseContext(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(files.cert, ec);
  if (ec) return FileError("--tls-cert", files.cert, ec);
  ctx->use_private_key_file(files.key, ssl::context::pem, ec);
  if (ec) {
    Status s = FileError("--tls-key", files.key, ec);
    if (s.message().find("mismatch") == std::string::npos) return s;
  }
  if (ec || SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    ERR_clear_error();
    return InvalidArgument("--tls-key '" + files.key + "' is not the key of the certificate in --tls-cert '" +
                           files.cert + "'");
  }
  if (!files.client_ca.empty()) {
    ctx->load_verify_file(files.client_ca, ec);
    if (ec) return FileError("--tls-client-ca", files.client_ca, ec);
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}

StatusOr<std::shared_ptr<ssl::context>> MakeClientTlsContext(const TlsClientFiles& files) {
  auto ctx = BaseContext(ssl::context::tls_client);
  boost::system::error_code ec;
  if (files.ca.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) return FileError("the system's CA certificates", "", ec);
  } else {
    ctx->load_verify_file(files.ca, ec);
    if (ec) return FileError("--tls-ca", files.ca, ec);
  }
  if (!files.cert.empty()) {
    ctx->use_certificate_chain_file(files.cert, ec);
    if (ec) return FileError("--tls-cert", files.cert, ec);
    ctx->use_private_key_file(files.key, ssl::context::pem, ec);
    if (ec) return FileError("--tls-key", files.key, ec);
  }
  ctx->set_verify_mode(ssl::verify_peer);
  return ctx;
}

}  // namespace vigil
