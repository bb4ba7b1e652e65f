#include "protocol/json.h"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <string>

namespace vigil {
namespace {

namespace rj = rapidjson;

// Forwards SAX events to the document and stops the parse (handler returns
// false) when an array or object would open deeper than the limit. The
// parser recurses once per open array or object, so stopping there also
// bounds its own stack.
class DepthLimit {
 public:
  DepthLimit(rj::Document& doc, int max_depth) : doc_(doc), max_depth_(max_depth) {}
  bool too_deep() const { return too_deep_; }

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned u) { return doc_.Uint(u); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t u) { return doc_.Uint64(u); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const char* s, rj::SizeType n, bool copy) { return doc_.RawNumber(s, n, copy); }
  bool String(const char* s, rj::SizeType n, bool copy) { return doc_.String(s, n, copy); }
  bool Key(const char* s, rj::SizeType n, bool copy) { return doc_.Key(s, n, copy); }
  bool StartObject() { return Open() && doc_.StartObject(); }
  bool EndObject(rj::SizeType n) {
    --depth_;
    return doc_.EndObject(n);
  }
  bool StartArray() { return Open() && doc_.StartArray(); }
  bool EndArray(rj::SizeType n) {
    --depth_;
    return doc_.EndArray(n);
  }

 private:
  bool Open() {
    if (++depth_ > max_depth_) {
      too_deep_ = true;
      return false;
    }
    return true;
  }

  rj::Document& doc_;
  const int max_depth_;
  int depth_ = 0;
  bool too_deep_ = false;
};

template <unsigned kFlags>
Status Parse(std::string_view text, rj::Document& doc, int max_depth) {
  rj::MemoryStream stream(text.data(), text.size());
  rj::Reader reader;
  DepthLimit limit(doc, max_depth);
  rj::ParseResult result;
  auto generate = [&](rj::Document&) {
    result = reader.Parse<kFlags>(stream, limit);
    return !result.IsError();
  };
  doc.Populate(generate);
  if (limit.too_deep()) {
    return InvalidArgument("malformed JSON at offset " + std::to_string(result.Offset()) +
                           ": arrays and objects nested deeper than " + std::to_string(max_depth) + " levels");
  }
  if (result.IsError()) {
    return InvalidArgument("malformed JSON at offset " + std::to_string(result.Offset()) + ": " +
                           rj::GetParseError_En(result.Code()));
  }
  // The stream reads a NUL byte as the end of the text: anything after one
  // would otherwise be ignored without a word.
  if (stream.Tell() < text.size()) {
    return InvalidArgument("malformed JSON at offset " + std::to_string(stream.Tell()) +
                           ": a NUL byte inside the text");
  }
  return Status::Ok();
}

}  // namespace

Status ParseJson(std::string_view text, rj::Document& doc, const JsonParseOptions& options) {
  // Strings must be valid UTF-8: whatever a client sends may be echoed into
  // a reply or a log, and must not make those invalid.
  constexpr unsigned kBase = rj::kParseValidateEncodingFlag;
  return options.nan_and_infinity ? Parse<kBase | rj::kParseNanAndInfFlag>(text, doc, options.max_depth)
                                  : Parse<kBase>(text, doc, options.max_depth);
}

}  // namespace vigil
