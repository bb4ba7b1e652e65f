// UTF-8 checks for text that came from outside: what is written into JSON,
// logs or stored specs must be well-formed. Pure functions.
#pragma once

#include <cstddef>
#include <string_view>

namespace vigil {

// The length of the well-formed UTF-8 sequence that starts `s` (whose first
// byte is 0x80 or more), or 0 when it is not one: overlong forms, surrogates
// and values past U+10FFFF are not well-formed.
size_t Utf8SequenceLength(std::string_view s);

// Whether all of `s` is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

}  // namespace vigil
