#include "core/clock.h"

namespace vigil {

SystemClock* SystemClock::Get() {
  static SystemClock clock;
  return &clock;
}

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {
class SystemWallClock final : public WallClock {
 public:
  int64_t NowMillis() const override { return UnixMillis(); }
};
}  // namespace

WallClock* WallClock::System() {
  static SystemWallClock clock;
  return &clock;
}

}  // namespace vigil
