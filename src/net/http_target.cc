#include "net/http_target.h"

#include <charconv>

#include "protocol/oip_json.h"

namespace vigil {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::vector<std::string> SplitPath(std::string_view target) {
  const size_t q = target.find('?');
  if (q != std::string_view::npos) target = target.substr(0, q);
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= target.size()) {
    size_t end = target.find('/', start);
    if (end == std::string_view::npos) end = target.size();
    if (end > start) parts.push_back(PercentDecode(target.substr(start, end - start)));
    start = end + 1;
  }
  return parts;
}

std::string_view QueryOf(std::string_view target) {
  const size_t q = target.find('?');
  return q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
}

std::optional<std::string> QueryValue(std::string_view query, std::string_view key) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view pair = query.substr(pos, end - pos);
    const size_t eq = pair.find('=');
    if (PercentDecode(pair.substr(0, eq)) == key) {
      return eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1));
    }
    pos = end + 1;
  }
  return std::nullopt;
}

StatusOr<int64_t> IntQuery(std::string_view query, std::string_view key, int64_t fallback, int64_t min, int64_t max,
                           std::string_view unit) {
  auto text = QueryValue(query, key);
  if (!text) return fallback;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || ptr != text->data() + text->size() || v < min || v > max) {
    const std::string shown = text->size() > 32 ? text->substr(0, 32) + "..." : *text;
    return InvalidArgument("query parameter '" + std::string(key) + "' must be an integer from " + std::to_string(min) +
                           " to " + std::to_string(max) + (unit.empty() ? "" : " (" + std::string(unit) + ")") +
                           ", got '" + shown + "'");
  }
  return v;
}

HttpResponse MethodNotAllowed(const HttpRequest& request, std::string_view allowed) {
  HttpResponse res = MakeResponse(405, ErrorJson(std::string(request.method_string()) + " is not allowed on " +
                                                 std::string(request.target()) + "; use " + std::string(allowed)));
  res.set(boost::beast::http::field::allow, boost::beast::string_view(allowed.data(), allowed.size()));
  return res;
}

HttpResponse MethodNotAllowed(const HttpRequest& request, boost::beast::http::verb want) {
  const auto name = boost::beast::http::to_string(want);
  return MethodNotAllowed(request, std::string_view(name.data(), name.size()));
}

}  // namespace vigil
