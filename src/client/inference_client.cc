#include "client/inference_client.h"

#include "protocol/json.h"

#include <rapidjson/document.h>

#include <charconv>

#include "client/http_client.h"
#include "protocol/json.h"

namespace vigil {
namespace {

constexpr const char* kHeaderLength = "Inference-Header-Content-Length";

// The server's {"error": ...} message, or the body itself.
std::string ErrorMessage(const HttpReply& r) {
  if (auto message = ErrorMessageOf(r.body)) return *message;
  return "HTTP " + std::to_string(r.status) + (r.body.empty() ? "" : ": " + r.body.substr(0, 200));
}

Status ReplyStatus(const HttpReply& r) {
  if (r.status == 200) return Status::Ok();
  return Status(StatusCodeForHttp(r.status), ErrorMessage(r));
}

Status ParseTensorMetadata(const rapidjson::Value& v, std::vector<TensorMetadata>& out) {
  if (!v.IsArray()) return InvalidArgument("model metadata: inputs/outputs must be arrays");
  for (const auto& t : v.GetArray()) {
    if (!t.IsObject() || !t.HasMember("name") || !t["name"].IsString() || !t.HasMember("datatype") ||
        !t["datatype"].IsString() || !t.HasMember("shape") || !t["shape"].IsArray())
      return InvalidArgument("model metadata: a tensor lacks name, datatype or shape");
    TensorMetadata m;
    m.name = t["name"].GetString();
    m.datatype = ParseDataType(t["datatype"].GetString());
    for (const auto& d : t["shape"].GetArray()) {
      if (!d.IsInt64())
        return InvalidArgument("model metadata: tensor '" + m.name + "' has a shape that is not integers");
      m.shape.push_back(d.GetInt64());
    }
    out.push_back(std::move(m));
  }
  return Status::Ok();
}

std::string ModelPath(const std::string& model, const std::string& version) {
  return "/v2/models/" + model + (version.empty() ? "" : "/versions/" + version);
}

class HttpInferenceClient final : public InferenceClient {
 public:
  HttpInferenceClient(std::unique_ptr<HttpClient> http, bool binary, const std::string& token)
      : http_(std::move(http)), binary_(binary) {
    if (!token.empty()) control_headers_["Authorization"] = "Bearer " + token;
  }

  Status ServerReady() override {
    VIGIL_ASSIGN_OR_RETURN(HttpReply r, http_->Get("/v2/health/ready"));
    if (r.status == 200) return Status::Ok();
    return Unavailable("server is not ready: " + ErrorMessage(r));
  }

  StatusOr<ModelMetadata> GetModelMetadata(const std::string& model, const std::string& version) override {
    VIGIL_ASSIGN_OR_RETURN(HttpReply r, http_->Get(ModelPath(model, version)));
    VIGIL_RETURN_IF_ERROR(ReplyStatus(r));
    rapidjson::Document d;
    if (!ParseJson(r.body, d).ok() || !d.IsObject() || !d.HasMember("inputs") || !d.HasMember("outputs"))
      return InvalidArgument("model metadata for '" + model + "' is not a metadata object: " + r.body.substr(0, 200));
    ModelMetadata m;
    m.name = d.HasMember("name") && d["name"].IsString() ? d["name"].GetString() : model;
    if (d.HasMember("platform") && d["platform"].IsString()) m.platform = d["platform"].GetString();
    if (d.HasMember("versions") && d["versions"].IsArray())
      for (const auto& v : d["versions"].GetArray()) {
        if (v.IsString()) m.versions.push_back(v.GetString());
      }
    VIGIL_RETURN_IF_ERROR(ParseTensorMetadata(d["inputs"], m.inputs));
    VIGIL_RETURN_IF_ERROR(ParseTensorMetadata(d["outputs"], m.outputs));
    return m;
  }

  StatusOr<InferReply> Infer(const InferCall& call) override {
    InferCall c = call;
    if (binary_) {
      c.binary_output = true;
      for (auto& o : c.outputs) o.binary = true;
    }
    EncodedBody enc = EncodeInferRequest(c, binary_);
    std::map<std::string, std::string> headers;
    if (enc.header_length) {
      headers["Content-Type"] = "application/octet-stream";
      headers[kHeaderLength] = std::to_string(*enc.header_length);
    }
    VIGIL_ASSIGN_OR_RETURN(
        HttpReply r, http_->Post(ModelPath(call.model, VersionString(call.version)) + "/infer", enc.body, headers));
    VIGIL_RETURN_IF_ERROR(ReplyStatus(r));
    std::optional<size_t> header_length;
    if (const std::string h = r.header("inference-header-content-length"); !h.empty()) {
      size_t n = 0;
      auto [ptr, ec] = std::from_chars(h.data(), h.data() + h.size(), n);
      if (ec != std::errc() || ptr != h.data() + h.size())
        return InvalidArgument("reply has a bad Inference-Header-Content-Length: " + h);
      header_length = n;
    }
    return DecodeInferReply(r.body, header_length);
  }

  Status LoadModel(const std::string& model, const std::optional<std::string>& config) override {
    const std::string body = config ? LoadRequestJson(*config) : "";
    VIGIL_ASSIGN_OR_RETURN(HttpReply r,
                           http_->Post("/v2/repository/models/" + model + "/load", body, control_headers_));
    return ReplyStatus(r);
  }

  Status UnloadModel(const std::string& model) override {
    VIGIL_ASSIGN_OR_RETURN(HttpReply r,
                           http_->Post("/v2/repository/models/" + model + "/unload", "", control_headers_));
    return ReplyStatus(r);
  }

 private:
  std::unique_ptr<HttpClient> http_;
  bool binary_;
  std::map<std::string, std::string> control_headers_;
};

}  // namespace

StatusCode StatusCodeForHttp(unsigned http_status) {
  switch (http_status) {
    case 200:
      return StatusCode::kOk;
    case 400:
    case 413:
      return StatusCode::kInvalidArgument;
    case 404:
    case 405:
      return StatusCode::kNotFound;
    case 409:
      return StatusCode::kFailedPrecondition;
    case 429:
      return StatusCode::kResourceExhausted;
    case 501:
      return StatusCode::kUnimplemented;
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 503:
      return StatusCode::kUnavailable;
    case 504:
      return StatusCode::kDeadlineExceeded;
    default:
      return StatusCode::kInternal;
  }
}

Status ParseServerUrl(std::string_view url, ClientOptions* options) {
  std::string_view rest = url;
  if (auto scheme = rest.find("://"); scheme != std::string_view::npos) {
    const std::string_view s = rest.substr(0, scheme);
    if (s == "http" || s == "https") {
      options->protocol = Protocol::kHttp;
    } else if (s == "grpc" || s == "grpcs") {
      options->protocol = Protocol::kGrpc;
    } else {
      return InvalidArgument("URL '" + std::string(url) + "': scheme must be http://, https://, grpc:// or grpcs://");
    }
    options->tls = s == "https" || s == "grpcs";
    rest.remove_prefix(scheme + 3);
  }
  if (auto slash = rest.find('/'); slash != std::string_view::npos) rest = rest.substr(0, slash);
  const auto colon = rest.rfind(':');
  if (rest.empty() || colon == 0) return InvalidArgument("URL '" + std::string(url) + "' has no host");
  if (colon == std::string_view::npos) {
    options->host = std::string(rest);
    options->port = options->protocol == Protocol::kGrpc ? 8001 : 8000;
    return Status::Ok();
  }
  unsigned port = 0;
  const std::string_view p = rest.substr(colon + 1);
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || ptr != p.data() + p.size() || port == 0 || port > 65535)
    return InvalidArgument("URL '" + std::string(url) + "': port must be a number from 1 to 65535");
  options->host = std::string(rest.substr(0, colon));
  options->port = static_cast<uint16_t>(port);
  return Status::Ok();
}

HttpClient::Options HttpOptionsFor(const ClientOptions& options) {
  HttpClient::Options ho;
  ho.host = options.host;
  ho.port = options.port;
  ho.timeout = options.timeout;
  ho.tls = options.tls;
  ho.tls_ca = options.tls_ca;
  ho.tls_cert = options.tls_cert;
  ho.tls_key = options.tls_key;
  return ho;
}

StatusOr<std::unique_ptr<InferenceClient>> ConnectInferenceClient(const ClientOptions& options) {
  if (options.protocol == Protocol::kGrpc) return internal::ConnectGrpcClient(options);
  VIGIL_ASSIGN_OR_RETURN(auto http, HttpClient::Connect(HttpOptionsFor(options)));
  return std::unique_ptr<InferenceClient>(new HttpInferenceClient(std::move(http), options.binary, options.token));
}

}  // namespace vigil
