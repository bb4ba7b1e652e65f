#include "protocol/oip_json.h"

#include "core/utf8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

namespace vigil {
namespace {

template <typename T>
Tensor MakeTensor(std::string name, Shape shape, DataType type, std::vector<T> values) {
  Tensor t;
  t.name = std::move(name);
  t.datatype = type;
  t.shape = std::move(shape);
  t.data.resize(values.size() * sizeof(T));
  std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

std::string Err(const std::string& body, std::optional<size_t> header = std::nullopt) {
  auto r = DecodeInferRequest(body, header);
  return r.ok() ? "" : r.status().message();
}

TEST(OipJson, DecodesNestedAndFlatDataTheSameWay) {
  auto nested = DecodeInferRequest(
      R"({"id":"r1","inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[[1,2,3],[4,5,6.5]]}]})",
      std::nullopt);
  auto flat = DecodeInferRequest(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[1,2,3,4,5,6.5]}]})",
                                 std::nullopt);
  ASSERT_TRUE(nested.ok()) << nested.status().message();
  ASSERT_TRUE(flat.ok());
  EXPECT_EQ(nested->id, "r1");
  EXPECT_EQ(nested->inputs[0].shape, (Shape{2, 3}));
  EXPECT_EQ(nested->inputs[0].data, flat->inputs[0].data);
  EXPECT_EQ(nested->inputs[0].as<float>()[5], 6.5f);
}

TEST(OipJson, DecodesParametersOutputsAndEveryJsonType) {
  auto r = DecodeInferRequest(
      R"({"parameters":{"priority":2,"timeout":1000,"tag":"a","flag":true,"binary_data_output":true},
          "inputs":[{"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]},
                    {"name":"i","datatype":"INT64","shape":[1],"data":[-9007199254740993]},
                    {"name":"u","datatype":"UINT8","shape":[1],"data":[255]},
                    {"name":"s","datatype":"BYTES","shape":[2],"data":["hi",""]},
                    {"name":"d","datatype":"FP64","shape":[1],"data":[0.1]}],
          "outputs":[{"name":"y"},{"name":"z","parameters":{"binary_data":false}}]})",
      std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(std::get<int64_t>(r->parameters.at("priority")), 2);
  EXPECT_EQ(std::get<std::string>(r->parameters.at("tag")), "a");
  EXPECT_TRUE(r->binary_output);
  EXPECT_EQ(r->inputs[0].data, (std::vector<uint8_t>{1, 0}));
  EXPECT_EQ(r->inputs[1].as<int64_t>()[0], -9007199254740993LL);
  EXPECT_EQ(r->inputs[2].data[0], 255);
  EXPECT_TRUE(ValidateBytesBuffer(r->inputs[3].data, 2).ok());
  EXPECT_EQ(r->inputs[4].as<double>()[0], 0.1);
  ASSERT_EQ(r->outputs.size(), 2u);
  EXPECT_TRUE(r->outputs[0].binary);   // inherits binary_data_output
  EXPECT_FALSE(r->outputs[1].binary);  // per-output override
}

TEST(OipJson, RejectsBadInputWithAMessageThatNamesIt) {
  EXPECT_NE(Err("{\"inputs\":[").find("malformed JSON"), std::string::npos);
  EXPECT_NE(Err("[1]").find("JSON object"), std::string::npos);
  EXPECT_NE(Err("{}").find("'inputs'"), std::string::npos);
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[1,2,3,4,5]}]})")
                .find("needs 6 elements, data has 5"),
            std::string::npos);
  EXPECT_NE(
      Err(R"({"inputs":[{"name":"x","datatype":"FP33","shape":[1],"data":[1]}]})").find("unknown datatype 'FP33'"),
      std::string::npos);
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[1.5]}]})").find("not a INT32"),
            std::string::npos);
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"UINT8","shape":[1],"data":[256]}]})").find("element 0"),
            std::string::npos);
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":["a"]}]})").find("input 'x'"),
            std::string::npos);
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[-1],"data":[1]}]})").find("non-negative"),
            std::string::npos);
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"FP16","shape":[1],"data":[1]}]})").find("binary"),
            std::string::npos);
  EXPECT_NE(Err(R"({"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]})").find("'name'"), std::string::npos);
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]})").find("'data' is missing"),
            std::string::npos);
  EXPECT_NE(Err(R"({"id":7,"inputs":[]})").find("'id'"), std::string::npos);
}

std::string BinaryBody(const std::string& json, const void* bytes, size_t n) {
  return json + std::string(static_cast<const char*>(bytes), n);
}

TEST(OipJson, DecodesBinaryTensors) {
  const float values[4] = {1.5f, -2, 3, 4};
  const std::string json =
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"parameters":{"binary_data_size":16}}]})";
  auto r = DecodeInferRequest(BinaryBody(json, values, 16), json.size());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->inputs[0].as<float>()[0], 1.5f);
  EXPECT_EQ(r->inputs[0].as<float>()[3], 4.0f);
  // Size disagreeing with the shape, data missing, or bytes left over.
  const std::string wrong =
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"parameters":{"binary_data_size":16}}]})";
  EXPECT_NE(Err(BinaryBody(wrong, values, 16), wrong.size()).find("needs 24 bytes"), std::string::npos);
  EXPECT_NE(Err(BinaryBody(json, values, 8), json.size()).find("exceeds"), std::string::npos);
  EXPECT_NE(Err(BinaryBody(json, values, 16) + "xx", json.size()).find("not claimed"), std::string::npos);
  EXPECT_NE(Err(json, json.size() + 5).find("exceeds the body size"), std::string::npos);
}

TEST(OipJson, EncodesJsonAndBinaryOutputs) {
  InferReply reply;
  reply.model = "m";
  reply.version = 2;
  reply.id = "abc";
  Tensor t;
  t.name = "y";
  t.datatype = DataType::kFp32;
  t.shape = {1, 3};
  const float v[3] = {0.25f, 1e-7f, -3};
  t.data.assign(reinterpret_cast<const uint8_t*>(v), reinterpret_cast<const uint8_t*>(v) + 12);
  reply.outputs = {t};
  reply.binary = {false};
  EncodedBody json = EncodeInferReply(reply);
  EXPECT_FALSE(json.header_length);
  EXPECT_EQ(
      json.body,
      R"({"model_name":"m","model_version":"2","id":"abc","outputs":[{"name":"y","datatype":"FP32","shape":[1,3],"data":[0.25,1e-07,-3]}]})");
  reply.binary = {true};
  EncodedBody bin = EncodeInferReply(reply);
  ASSERT_TRUE(bin.header_length);
  const std::string header = bin.body.substr(0, *bin.header_length);
  EXPECT_NE(header.find("\"binary_data_size\":12"), std::string::npos) << header;
  ASSERT_EQ(bin.body.size(), *bin.header_length + 12);
  float back[3];
  std::memcpy(back, bin.body.data() + *bin.header_length, 12);
  EXPECT_EQ(back[1], 1e-7f);
}

TEST(OipJson, RawBodyIsTheSingleInputAtBatchOne) {
  TensorSpec spec{"x", DataType::kFp32, {3}};
  Tensor t;
  const float v[3] = {1, 2, 3};
  ASSERT_TRUE(RawBodyInput(std::string_view(reinterpret_cast<const char*>(v), 12), spec, true, &t).ok());
  EXPECT_EQ(t.shape, (Shape{1, 3}));
  EXPECT_FALSE(RawBodyInput("abc", spec, true, &t).ok());
}

TEST(OipJson, ErrorJsonEscapes) { EXPECT_EQ(ErrorJson("bad \"x\"\n"), R"({"error":"bad \"x\"\n"})"); }

// The client's encoder feeds the server's decoder, and the server's encoder
// feeds the client's decoder: every datatype, JSON and binary.
TEST(OipJson, RequestsRoundTripThroughTheServerDecoder) {
  InferCall call;
  call.id = "req-7";
  call.parameters["priority"] = int64_t{2};
  call.parameters["tag"] = std::string("a\"b");
  call.inputs.push_back(MakeTensor<float>("x", {2, 2}, DataType::kFp32, {1.5f, -2, 1e-7f, 3}));
  call.inputs.push_back(MakeTensor<int64_t>("ids", {1, 3}, DataType::kInt64, {-1, 0, int64_t{1} << 40}));
  Tensor s;
  s.name = "s";
  s.datatype = DataType::kBytes;
  s.shape = {2};
  AppendBytesElement(s.data, "hi");
  AppendBytesElement(s.data, "");
  call.inputs.push_back(s);
  call.outputs = {{"probabilities", true}, {"logits", false}};
  for (bool binary : {false, true}) {
    SCOPED_TRACE(binary ? "binary" : "json");
    EncodedBody enc = EncodeInferRequest(call, binary);
    EXPECT_EQ(enc.header_length.has_value(), binary);
    auto decoded = DecodeInferRequest(enc.body, enc.header_length);
    ASSERT_TRUE(decoded.ok()) << decoded.status().message() << "\n" << enc.body;
    EXPECT_EQ(decoded->id, "req-7");
    EXPECT_EQ(std::get<int64_t>(decoded->parameters.at("priority")), 2);
    EXPECT_EQ(std::get<std::string>(decoded->parameters.at("tag")), "a\"b");
    ASSERT_EQ(decoded->inputs.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(decoded->inputs[i].name, call.inputs[i].name);
      EXPECT_EQ(decoded->inputs[i].datatype, call.inputs[i].datatype);
      EXPECT_EQ(decoded->inputs[i].shape, call.inputs[i].shape);
      EXPECT_EQ(decoded->inputs[i].data, call.inputs[i].data);
    }
    ASSERT_EQ(decoded->outputs.size(), 2u);
    EXPECT_TRUE(decoded->outputs[0].binary);
    EXPECT_FALSE(decoded->outputs[1].binary);
  }
}

TEST(OipJson, RepliesOfEveryJsonDatatypeAreValidAndReadBack) {
  InferReply reply;
  reply.model = "m\xff";  // a name that is not UTF-8 (from a URL) is repaired, not echoed
  reply.version = 1;
  reply.parameters["ratio"] = 1.5;
  reply.parameters["broken"] = std::numeric_limits<double>::quiet_NaN();  // JSON cannot carry it: left out
  reply.outputs.push_back(
      MakeTensor<float>("f", {1, 4}, DataType::kFp32,
                        {0.1f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity()}));
  reply.outputs.push_back(MakeTensor<uint8_t>("u8", {1, 2}, DataType::kUint8, {0, 255}));
  reply.outputs.push_back(MakeTensor<uint64_t>("u64", {1, 1}, DataType::kUint64, {~uint64_t{0}}));
  reply.outputs.push_back(MakeTensor<int8_t>("i8", {1, 2}, DataType::kInt8, {-128, 127}));
  reply.outputs.push_back(MakeTensor<uint8_t>("b", {1, 2}, DataType::kBool, {1, 0}));
  Tensor bytes;
  bytes.name = "s";
  bytes.datatype = DataType::kBytes;
  bytes.shape = {1, 2};
  AppendBytesElement(bytes.data, "ok \"quoted\"\n");
  AppendBytesElement(bytes.data, "\xc0\xaf");
  reply.outputs.push_back(bytes);
  reply.binary.assign(reply.outputs.size(), false);
  const EncodedBody enc = EncodeInferReply(reply);
  EXPECT_TRUE(IsValidUtf8(enc.body)) << enc.body;
  // Shortest float digits, and the protocol's tokens for the non-finite.
  EXPECT_NE(enc.body.find(R"("data":[0.1,NaN,Infinity,-Infinity])"), std::string::npos) << enc.body;
  EXPECT_NE(enc.body.find(R"("parameters":{"ratio":1.5})"), std::string::npos) << enc.body;
  EXPECT_NE(enc.body.find(R"("data":[18446744073709551615])"), std::string::npos) << enc.body;
  EXPECT_NE(enc.body.find(R"("data":[true,false])"), std::string::npos) << enc.body;
  auto back = DecodeInferReply(enc.body, enc.header_length);
  ASSERT_TRUE(back.ok()) << back.status().message() << "\n" << enc.body;
  EXPECT_EQ(back->model, "m\xef\xbf\xbd");
  ASSERT_EQ(back->outputs.size(), reply.outputs.size());
  EXPECT_EQ(back->outputs[0].as<float>()[0], 0.1f);
  EXPECT_TRUE(std::isnan(back->outputs[0].as<float>()[1]));
  EXPECT_EQ(back->outputs[0].as<float>()[3], -std::numeric_limits<float>::infinity());
  for (size_t i = 1; i < 5; ++i) EXPECT_EQ(back->outputs[i].data, reply.outputs[i].data) << reply.outputs[i].name;
  const auto strings = BytesElements(back->outputs[5]);
  ASSERT_EQ(strings.size(), 2u);
  EXPECT_EQ(strings[0], "ok \"quoted\"\n");
  EXPECT_EQ(strings[1], "\xef\xbf\xbd\xef\xbf\xbd");
}

TEST(OipJson, RepliesRoundTripThroughTheClientDecoder) {
  InferReply reply;
  reply.model = "m";
  reply.version = 3;
  reply.id = "r";
  reply.parameters["vigil.variant"] = std::string("prod");
  reply.outputs.push_back(MakeTensor<float>("p", {1, 2}, DataType::kFp32, {0.25f, 0.75f}));
  reply.outputs.push_back(MakeTensor<double>("q", {1, 1}, DataType::kFp64, {-1e300}));
  reply.binary = {true, false};
  EncodedBody enc = EncodeInferReply(reply);
  auto decoded = DecodeInferReply(enc.body, enc.header_length);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(decoded->model, "m");
  EXPECT_EQ(decoded->version, 3);
  EXPECT_EQ(decoded->id, "r");
  EXPECT_EQ(std::get<std::string>(decoded->parameters.at("vigil.variant")), "prod");
  ASSERT_EQ(decoded->outputs.size(), 2u);
  EXPECT_EQ(decoded->outputs[0].data, reply.outputs[0].data);
  EXPECT_EQ(decoded->outputs[1].data, reply.outputs[1].data);
  EXPECT_EQ(decoded->binary, (std::vector<bool>{true, false}));

  auto error = DecodeInferReply(R"({"error":"model 'x' is not loaded"})", std::nullopt);
  ASSERT_FALSE(error.ok());
  EXPECT_EQ(error.status().message(), "model 'x' is not loaded");
  EXPECT_FALSE(DecodeInferReply(R"({"model_name":"m"})", std::nullopt).ok());
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// Crash 2 (issue 11): the shape's product wrapped (std::length_error), and
// [1, 2^30] with empty data made the decoder zero 4 GB before counting.
TEST(OipJson, HugeShapesAreRefusedBeforeAnythingIsAllocated) {
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[4294967297,4294967295],"data":[]}]})")
                .find("input 'x': shape [4294967297, 4294967295] has more than"),
            std::string::npos);
  const std::string big = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,1073741824],"data":[]}]})";
  EXPECT_NE(Err(big).find("more than a JSON body of"), std::string::npos) << Err(big);
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"INT64","shape":[1,1073741824],"data":[]}]})")
                .find("more than a JSON body of"),
            std::string::npos);
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data":[1]}]})")
                .find("at most 16 are accepted"),
            std::string::npos);
  // Binary: the claimed size must match the shape, whatever the shape says.
  std::string header = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[4611686018427387904,4],)"
                       R"("parameters":{"binary_data_size":0}}]})";
  EXPECT_NE(Err(header, header.size()).find("has more than"), std::string::npos);
}

// Crash 3 (issue 11): data nested 100,000 deep overflowed the stack of the
// data decoder, 1,000,000 deep that of rapidjson's recursive parser.
TEST(OipJson, DeepNestingIsRefusedWithoutRecursion) {
  for (size_t depth : {size_t{100}, size_t{100'000}, size_t{1'000'000}}) {
    const std::string body = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":)" +
                             std::string(depth, '[') + "1" + std::string(depth, ']') + "}]}";
    EXPECT_NE(Err(body).find("nested deeper than 64 levels"), std::string::npos) << depth;
  }
  EXPECT_NE(Err(std::string(2'000'000, '[')).find("nested deeper"), std::string::npos);
  EXPECT_NE(Err(std::string(1'000'000, '{')).find("malformed JSON"), std::string::npos);
  // What a tensor of the highest rank needs still parses.
  std::string nested = std::string(16, '[') + "1" + std::string(16, ']');
  auto ok = DecodeInferRequest(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],)"
                               R"("data":)" +
                                   nested + "}]}",
                               std::nullopt);
  EXPECT_TRUE(ok.ok()) << ok.status().message();
}

// 1e308 into FP32 was undefined behaviour (a double beyond FLT_MAX).
TEST(OipJson, NumbersOutsideTheDatatypeAreRefused) {
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1,1e308]}]})")
                .find("element 1 is 1e+308, outside the range of FP32"),
            std::string::npos);
  EXPECT_NE(Err(R"({"inputs":[{"name":"x","datatype":"INT8","shape":[1],"data":[300]}]})").find("element 0"),
            std::string::npos);
  auto inf = DecodeInferRequest(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[NaN,-Infinity]}]})",
                                std::nullopt);
  ASSERT_TRUE(inf.ok()) << inf.status().message();
  EXPECT_TRUE(std::isinf(inf->inputs[0].as<float>()[1]));
}

TEST(OipJson, InvalidUtf8IsNeverEchoedIntoJson) {
  // Refused where it is parsed...
  EXPECT_NE(Err("{\"id\":\"\xff\xfe\",\"inputs\":[]}").find("Invalid encoding"), std::string::npos)
      << Err("{\"id\":\"\xff\",\"inputs\":[]}");
  // ...and replaced where it comes from elsewhere (a URL path, say): each
  // byte that starts no well-formed sequence becomes U+FFFD, and the body
  // stays valid JSON that reads back as that text.
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_EQ(ErrorMessageOf(ErrorJson("model '\xff\xc3(' \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xed\xa0\x80")),
            "model '" + fffd + fffd + "(' \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 " + fffd + fffd + fffd);
  EXPECT_EQ(ErrorMessageOf(ErrorJson("\xc0\xaf")), fffd + fffd);  // overlong '/'
  EXPECT_TRUE(IsValidUtf8(ErrorJson("\xc0\xaf")));
}

TEST(OipJson, IdsAreCapped) {
  const std::string id(kMaxIdBytes + 1, 'i');
  EXPECT_NE(Err(R"({"id":")" + id + R"(","inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})")
                .find("'id' has 257 bytes"),
            std::string::npos);
}

}  // namespace
}  // namespace vigil
