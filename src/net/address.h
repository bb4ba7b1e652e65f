// IP address ranges (--admin-allow) and loopback checks, for the frontends'
// access policy and the HTTP server's view of a peer.
#pragma once

#include <array>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace vigil {

// An address range (192.168.0.0/16, ::1/128, 10.1.2.3 = /32).
struct AddressRange {
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};  // the network; IPv4 in the first 4
  int prefix = 0;                         // bits that must match
};
// "CIDR,CIDR,...": every entry must be an address with an optional /prefix
// in range; the error names the entry.
StatusOr<std::vector<AddressRange>> ParseAddressRanges(std::string_view list);
// Whether `address` (IPv4, IPv6, IPv4-mapped IPv6) is in one of `ranges`.
bool InAddressRanges(const std::vector<AddressRange>& ranges, std::string_view address);
// 127.0.0.0/8 and ::1/128.
std::vector<AddressRange> LoopbackRanges();

// Whether an address is on loopback, IPv4-mapped IPv6 (::ffff:127.0.0.1) too.
bool IsLoopbackAddress(std::string_view address);

}  // namespace vigil
