// Time-ordered identifiers: UUID version 7 (RFC 9562, section 5.7).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vigil {

// A new UUIDv7 in canonical text form ("0190a6e2-4f1c-7a3b-9c4d-5e6f7a8b9c0d"):
// 48 bits of Unix milliseconds, then 74 random bits. Ids made later sort
// after earlier ones (to the millisecond), so an index on them grows at
// its right edge instead of at random places.
std::string NewUuidV7(int64_t unix_ms);

// The first 64 bits (timestamp, version, 12 random bits) of a canonical
// UUIDv7, lowercase or uppercase; nullopt for anything else.
std::optional<uint64_t> UuidV7Prefix(std::string_view text);

}  // namespace vigil
