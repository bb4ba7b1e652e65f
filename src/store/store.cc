#include "store/store.h"

#include "core/hash.h"
#include "core/uuid.h"

namespace vigil {

int64_t PredictionIdKey(std::string_view id) {
  if (auto prefix = UuidV7Prefix(id)) return static_cast<int64_t>(*prefix);
  const uint64_t h = (static_cast<uint64_t>(Murmur3_32(id, 0x5bd1e995u)) << 32) | Murmur3_32(id, 0x9747b28cu);
  return static_cast<int64_t>(h);
}

}  // namespace vigil
