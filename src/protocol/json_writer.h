// JsonWriter: every JSON reply and record Vigil writes goes through
// rapidjson's Writer, not string concatenation. Strings from outside (a
// client's model name echoed in an error, a feature name) may hold bytes that
// are not UTF-8: each such byte is written as U+FFFD, so the output is always
// valid JSON. Non-finite numbers are written as null (JSON has no NaN).
//
//   JsonWriter w;
//   w.StartObject();
//   w.Key("model"); w.String(name);
//   w.Key("p99_ms"); w.Double(p99);
//   w.EndObject();
//   std::string body = w.Take();
//
// Include only from translation units that use rapidjson already.
// Thread-compatible.
#pragma once

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace vigil {

class JsonWriter {
 public:
  JsonWriter() : writer_(buffer_) {}
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;
  void Reserve(size_t bytes) { buffer_.Reserve(bytes); }

  void StartObject() { writer_.StartObject(); }
  void EndObject() { writer_.EndObject(); }
  void StartArray() { writer_.StartArray(); }
  void EndArray() { writer_.EndArray(); }
  void Key(std::string_view k) { Text(k, true); }
  void String(std::string_view s) { Text(s, false); }
  void Int(int64_t v) { writer_.Int64(v); }
  void Uint(uint64_t v) { writer_.Uint64(v); }
  void Bool(bool v) { writer_.Bool(v); }
  void Null() { writer_.Null(); }
  void Double(double v) {
    if (!std::isfinite(v)) {
      writer_.Null();
    } else if (v == std::floor(v) && std::fabs(v) < 9.0e15) {
      writer_.Int64(static_cast<int64_t>(v));  // 3, not 3.0
    } else {
      writer_.Double(v);
    }
  }

  // `v` rounded to `decimals` places (figures meant for people: 12.3 ms,
  // not 12.345678901).
  void Rounded(double v, int decimals) {
    const double scale = std::pow(10.0, decimals);
    Double(std::round(v * scale) / scale);
  }
  void RoundedField(std::string_view k, double v, int decimals) { Key(k), Rounded(v, decimals); }

  // Key and value in one call, for the common flat cases.
  void Field(std::string_view k, std::string_view v) { Key(k), String(v); }
  void Field(std::string_view k, const char* v) { Key(k), String(v); }
  void Field(std::string_view k, const std::string& v) { Key(k), String(v); }
  void Field(std::string_view k, int64_t v) { Key(k), Int(v); }
  void Field(std::string_view k, int v) { Key(k), Int(v); }
  void Field(std::string_view k, uint64_t v) { Key(k), Uint(v); }
  void Field(std::string_view k, double v) { Key(k), Double(v); }
  void Field(std::string_view k, bool v) { Key(k), Bool(v); }
  // "k": [low, high], how intervals are written.
  void IntervalField(std::string_view k, double low, double high) {
    Key(k);
    StartArray();
    Double(low);
    Double(high);
    EndArray();
  }
  // A value that is JSON already (a document stored by this program).
  void Raw(std::string_view json) { writer_.Verbatim(json, 0, rapidjson::kObjectType); }
  // An array already written as JSON (a tensor's numbers, formatted in one
  // pass).
  void RawArray(std::string_view json) { writer_.Verbatim(json, 0, rapidjson::kArrayType); }
  // A number already formatted (shortest float digits), or the NaN /
  // Infinity / -Infinity tokens the inference protocol's tensor data allows.
  void RawNumber(std::string_view text) { writer_.Verbatim(text, 0, rapidjson::kNumberType); }

  std::string Take() { return std::string(buffer_.GetString(), buffer_.GetSize()); }

 private:
  void Text(std::string_view s, bool key) {
    if (NeedsNoEscape(s)) return writer_.Verbatim(s, '"', rapidjson::kStringType);
    std::string valid;
    if (!IsValidUtf8(s)) {
      valid = ValidUtf8(s);
      s = valid;
    }
    const auto n = static_cast<rapidjson::SizeType>(s.size());
    key ? writer_.Key(s.data(), n) : writer_.String(s.data(), n);
  }
  // Printable ASCII without '"' or '\\' (names, ids, most labels): written
  // as it is. Anything else goes through rapidjson's escaping.
  static bool NeedsNoEscape(std::string_view s) {
    for (const char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') return false;
    }
    return true;
  }
  // `s` with every byte that does not start a well-formed sequence replaced by U+FFFD.
  static std::string ValidUtf8(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    for (size_t i = 0; i < s.size();) {
      const auto c = static_cast<unsigned char>(s[i]);
      const size_t n = c < 0x80 ? 1 : Utf8SequenceLength(s.substr(i));
      if (n == 0) {
        out += "\xEF\xBF\xBD";
        ++i;
      } else {
        out.append(s.data() + i, n);
        i += n;
      }
    }
    return out;
  }

  // rapidjson's Writer with one addition: a value copied in one block
  // (RawValue copies byte by byte), between `quote`s when not 0.
  class Writer : public rapidjson::Writer<rapidjson::StringBuffer> {
   public:
    using rapidjson::Writer<rapidjson::StringBuffer>::Writer;
    void Verbatim(std::string_view text, char quote, rapidjson::Type type) {
      Prefix(type);
      const size_t quotes = quote ? 2 : 0;
      char* out = os_->Push(text.size() + quotes);
      if (quote) *out++ = quote;
      if (!text.empty()) std::memcpy(out, text.data(), text.size());
      if (quote) out[text.size()] = quote;
      EndValue(true);
    }
  };

  rapidjson::StringBuffer buffer_;
  Writer writer_;
};

}  // namespace vigil
