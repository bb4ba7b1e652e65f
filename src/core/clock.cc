#include "core/clock.h"

namespace vigil {

SystemClock* SystemClock::Get() {
  static SystemClock clock;
  return &clock;
}

}  // namespace vigil
