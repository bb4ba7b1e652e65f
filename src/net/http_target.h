// Reading a request target ("/v2/models/m%20x/infer?from=1&to=2") and
// answering a wrong method: what every HTTP handler does before its own work.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "net/http_server.h"

namespace vigil {

// "%41" → "A"; a '%' not followed by two hex digits stays as it is.
std::string PercentDecode(std::string_view s);

// The path's segments, percent-decoded, without empty ones and without the
// query: "/v2//models/a%2Fb?x=1" → {"v2", "models", "a/b"}.
std::vector<std::string> SplitPath(std::string_view target);

// What follows the first '?', or "".
std::string_view QueryOf(std::string_view target);

// The percent-decoded value of `key` in a query ("a=1&b=2"); "" for a key
// without '='; nullopt when absent.
std::optional<std::string> QueryValue(std::string_view query, std::string_view key);

// The integer value of `key`, `fallback` when absent. A value that is not an
// integer in [min, max] is refused with a message naming the key, the range
// and (when given) its unit, so no arithmetic on it can overflow.
StatusOr<int64_t> IntQuery(std::string_view query, std::string_view key, int64_t fallback, int64_t min, int64_t max,
                           std::string_view unit = "");

// 405 naming the methods to use ("GET" or "GET, PUT, DELETE"), with an
// Allow header.
HttpResponse MethodNotAllowed(const HttpRequest& request, std::string_view allowed);
HttpResponse MethodNotAllowed(const HttpRequest& request, boost::beast::http::verb want);

}  // namespace vigil
