#include "server/http_replies.h"

#include "protocol/json.h"
#include "protocol/oip_json.h"
#include "server/status_codes.h"

namespace vigil {

namespace http = boost::beast::http;

HttpResponse ErrorResponse(const Status& s) {
  const unsigned code = HttpStatusFor(s.code());
  HttpResponse res = MakeResponse(code, ErrorJson(s.message()));
  if (code == 503 || code == 429) res.set(http::field::retry_after, std::to_string(kRetryAfterSeconds));
  return res;
}

AccessPolicy::Caller CallerOf(const HttpRequest& request, const RequestInfo& info) {
  AccessPolicy::Caller caller;
  if (auto it = request.find(http::field::authorization); it != request.end())
    caller.authorization = std::string_view(it->value().data(), it->value().size());
  caller.loopback = info.loopback;
  caller.address = info.address;
  caller.peer = info.peer;
  return caller;
}

void WriteQualityMembers(JsonWriter& j, const Quality& q) {
  for (const auto& [name, value] : QualityMetrics(q)) {
    if (value) j.Field(name, *value);
  }
}

StatusOr<rapidjson::Document> BodyObject(const std::string& body, const std::string& what) {
  rapidjson::Document d;
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    d.SetObject();
    return d;
  }
  if (Status s = ParseJson(body, d); !s.ok()) return InvalidArgument(what + ": " + s.message());
  if (!d.IsObject()) return InvalidArgument(what + ": the body must be a JSON object");
  return d;
}

}  // namespace vigil
