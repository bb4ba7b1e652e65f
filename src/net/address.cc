#include "net/address.h"

#include <boost/asio/ip/address.hpp>

#include <algorithm>

namespace vigil {

StatusOr<std::vector<AddressRange>> ParseAddressRanges(std::string_view list) {
  std::vector<AddressRange> out;
  constexpr size_t kMaxRanges = 1024;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string_view::npos) end = list.size();
    std::string_view entry = list.substr(pos, end - pos);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    pos = end + 1;
    const std::string shown(entry.substr(0, 64));
    if (entry.empty()) return InvalidArgument("--admin-allow: an empty entry (use CIDR,CIDR,...)");
    if (out.size() == kMaxRanges) return InvalidArgument("--admin-allow: more than 1024 ranges");
    const size_t slash = entry.find('/');
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(std::string(entry.substr(0, slash)), ec);
    if (ec) return InvalidArgument("--admin-allow: '" + shown + "' is not an address or CIDR range");
    AddressRange r;
    r.v6 = address.is_v6();
    const int max_prefix = r.v6 ? 128 : 32;
    r.prefix = max_prefix;
    if (slash != std::string_view::npos) {
      const std::string_view bits = entry.substr(slash + 1);
      int prefix = -1;
      if (!bits.empty() && bits.size() <= 3 && bits.find_first_not_of("0123456789") == std::string_view::npos)
        prefix = std::stoi(std::string(bits));
      if (prefix < 0 || prefix > max_prefix) {
        return InvalidArgument("--admin-allow: the prefix of '" + shown + "' must be from 0 to " +
                               std::to_string(max_prefix));
      }
      r.prefix = prefix;
    }
    if (r.v6) {
      const auto b = address.to_v6().to_bytes();
      std::copy(b.begin(), b.end(), r.bytes.begin());
    } else {
      const auto b = address.to_v4().to_bytes();
      std::copy(b.begin(), b.end(), r.bytes.begin());
    }
    out.push_back(r);
  }
  return out;
}

bool InAddressRanges(const std::vector<AddressRange>& ranges, std::string_view text) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return false;
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6());
  }
  std::array<unsigned char, 16> bytes{};
  if (address.is_v6()) {
    const auto b = address.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
  } else {
    const auto b = address.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
  }
  for (const AddressRange& r : ranges) {
    if (r.v6 != address.is_v6()) continue;
    bool match = true;
    for (int bit = 0; bit < r.prefix && match; bit += 8) {
      const int n = std::min(8, r.prefix - bit);
      const auto mask = static_cast<unsigned char>(0xFF << (8 - n));
      match = (bytes[static_cast<size_t>(bit / 8)] & mask) == (r.bytes[static_cast<size_t>(bit / 8)] & mask);
    }
    if (match) return true;
  }
  return false;
}

std::vector<AddressRange> LoopbackRanges() {
  AddressRange v4;
  v4.bytes[0] = 127;
  v4.prefix = 8;
  AddressRange v6;
  v6.v6 = true;
  v6.bytes[15] = 1;
  v6.prefix = 128;
  return {v4, v6};
}

bool IsLoopbackAddress(std::string_view text) {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return false;
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6()).is_loopback();
  }
  return address.is_loopback();
}

}  // namespace vigil
