// What every HTTP handler shares: the error reply of a Status, and who sent
// a request.
#pragma once

#include <rapidjson/document.h>

#include <string>

#include "core/status.h"
#include "monitoring/quality.h"
#include "net/access.h"
#include "net/http_server.h"
#include "protocol/json_writer.h"

namespace vigil {

// {"error": message} with the status's HTTP code; 503 and 429 answers carry
// Retry-After.
HttpResponse ErrorResponse(const Status& s);
// Seconds a client is told to wait before retrying a 503 or 429.
constexpr int kRetryAfterSeconds = 1;

// Who sent a request, as the access policy sees it (valid while `request` lives).
AccessPolicy::Caller CallerOf(const HttpRequest& request, const RequestInfo& info);

// A request body that must be a JSON object (empty = {}); errors start with `what`.
StatusOr<rapidjson::Document> BodyObject(const std::string& body, const std::string& what);

// The metrics of `q` that are set, as members of the open object: "accuracy": 0.9, ...
void WriteQualityMembers(JsonWriter& j, const Quality& q);

}  // namespace vigil
