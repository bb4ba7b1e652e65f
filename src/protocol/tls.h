// TLS contexts for the HTTP server and clients (Boost.Asio's SSL streams
// over OpenSSL): TLS 1.2 or newer, certificates and keys in PEM files.
// Errors name the file and OpenSSL's reason. The contexts are immutable
// once made and may be shared by every connection. The header is light:
// the code that opens TLS streams includes <boost/asio/ssl.hpp> itself.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"

namespace boost::asio::ssl {
class context;
}

namespace vigil {

struct TlsServerFiles {
  std::string cert;       // the certificate chain, leaf first
  std::string key;        // its private key
  std::string client_ca;  // when set, clients must present a certificate this CA signed (mutual TLS)
};

struct TlsClientFiles {
  std::string ca;         // CA bundle that signed the server's certificate; empty = the system's
  std::string cert, key;  // a client certificate (mutual TLS), optional
};

StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeServerTlsContext(const TlsServerFiles& files);
// The server's certificate is always verified (chain and host name).
StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeClientTlsContext(const TlsClientFiles& files);

// Reads a whole PEM file (for gRPC's credentials); errors name the file.
StatusOr<std::string> ReadPemFile(const std::string& path, const char* what);

}  // namespace vigil
