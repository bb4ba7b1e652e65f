// Leadership a test sets: leads while `epoch` > 0.
#pragma once

#include <atomic>
#include <cstdint>

#include "store/store.h"

namespace vigil::testing {

class FakeLeadership final : public Leadership {
 public:
  explicit FakeLeadership(int64_t first_epoch = 0) : epoch(first_epoch) {}
  bool IsLeader() const override { return epoch.load() > 0; }
  int64_t Epoch() const override { return epoch.load(); }
  std::atomic<int64_t> epoch;
};

}  // namespace vigil::testing
