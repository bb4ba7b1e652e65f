#!/usr/bin/env bash
# Makes a throwaway certificate authority and certificates signed by it,
# for tests and benchmarks of TLS on loopback (never for real use):
#   DIR/ca.pem                      the CA's certificate (what clients trust)
#   DIR/server.pem, server.key      for localhost and 127.0.0.1
#   DIR/client.pem, client.key      a client certificate (mutual TLS)
#   DIR/other-ca.pem, rogue.pem, rogue.key   a client certificate from another CA
#
#   tests/tls/make_certs.sh DIR
set -euo pipefail
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
ossl() { openssl "$@" > /dev/null 2>&1; }
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Vigil test CA" -keyout ca.key -out ca.pem
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Other test CA" -keyout other-ca.key -out other-ca.pem
sign() {  # name, subject, extensions, ca
  ossl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  ossl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.pem"
  rm -f "$1.csr" "$1.ext"
}
sign server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth" ca
sign client "/CN=vigil-test-client" "extendedKeyUsage=clientAuth" ca
sign rogue "/CN=rogue-client" "extendedKeyUsage=clientAuth" other-ca
chmod 600 ./*.key
