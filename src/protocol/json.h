// Bounded JSON parsing. Every JSON text Vigil reads from a peer (request
// bodies, feedback, admin bodies, load overrides, a server's replies in the
// client) goes through ParseJson: rapidjson's iterative parser (no recursion
// however deep the text) behind a handler that refuses nesting deeper than a
// limit, so neither the parser nor the code that walks the document after it
// can run out of stack. Include only from translation units that use
// rapidjson already. Thread-compatible.
#pragma once

#include <rapidjson/document.h>

#include <string_view>

#include "core/status.h"

namespace vigil {

// Arrays and objects nested deeper than this are refused. A tensor of the
// highest rank (kMaxTensorRank) inside a request body needs about 20.
constexpr int kMaxJsonDepth = 64;

struct JsonParseOptions {
  int max_depth = kMaxJsonDepth;
  bool nan_and_infinity = false;  // accept NaN, Infinity, -Infinity (as Python writes them)
};

// Parses `text` into `doc`. Errors name the offset and the cause
// ("malformed JSON at offset 12: ..." or "... nested deeper than 64 levels").
Status ParseJson(std::string_view text, rapidjson::Document& doc, const JsonParseOptions& options = {});

}  // namespace vigil
