#include "core/tensor.h"

#include <gtest/gtest.h>

namespace vigil {
namespace {

TEST(DataType, NamesAndSizesRoundTrip) {
  for (auto t : {DataType::kBool, DataType::kUint8, DataType::kInt64, DataType::kFp16, DataType::kFp32, DataType::kFp64,
                 DataType::kBytes}) {
    EXPECT_EQ(ParseDataType(DataTypeName(t)), t);
  }
  EXPECT_EQ(DataTypeSize(DataType::kFp32), 4u);
  EXPECT_EQ(DataTypeSize(DataType::kBf16), 2u);
  EXPECT_EQ(DataTypeSize(DataType::kBytes), 0u);
  EXPECT_EQ(ParseDataType("FLOAT"), DataType::kInvalid);
}

TEST(Shape, ElementCountAndMatching) {
  EXPECT_EQ(ElementCount({2, 30}), 60);
  EXPECT_EQ(ElementCount({}), 1);
  EXPECT_EQ(ElementCount({2, -1}), -1);
  EXPECT_TRUE(ShapeMatches({-1, 3}, {7, 3}));
  EXPECT_FALSE(ShapeMatches({-1, 3}, {7, 4}));
  EXPECT_FALSE(ShapeMatches({3}, {1, 3}));
  EXPECT_EQ(ShapeToString({1, -1}), "[1, -1]");
}

TEST(BytesBuffer, AcceptsWellFormedAndNamesTheFault) {
  std::vector<uint8_t> buf = {2, 0, 0, 0, 'h', 'i', 0, 0, 0, 0};
  EXPECT_TRUE(ValidateBytesBuffer(buf, 2).ok());
  EXPECT_FALSE(ValidateBytesBuffer(buf, 3).ok());
  buf.push_back(9);
  const Status s = ValidateBytesBuffer(buf, 2);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("trailing"), std::string::npos);
  std::vector<uint8_t> liar = {200, 0, 0, 0, 'x'};
  EXPECT_NE(ValidateBytesBuffer(liar, 1).message().find("beyond the end"), std::string::npos);
}

TEST(BytesBuffer, AppendAndReadElementsRoundTrip) {
  Tensor t;
  t.datatype = DataType::kBytes;
  t.shape = {3};
  AppendBytesElement(t.data, "hi");
  AppendBytesElement(t.data, "");
  AppendBytesElement(t.data, std::string_view("a\0b", 3));
  EXPECT_TRUE(ValidateBytesBuffer(t.data, 3).ok());
  const auto elements = BytesElements(t);
  ASSERT_EQ(elements.size(), 3u);
  EXPECT_EQ(elements[0], "hi");
  EXPECT_EQ(elements[1], "");
  EXPECT_EQ(elements[2], std::string_view("a\0b", 3));
}

TEST(StatusOr, CarriesValueOrError) {
  StatusOr<int> ok = 3;
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  StatusOr<int> bad = NotFound("nope");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(bad.status().WithContext("ctx").message(), "ctx: nope");
}

}  // namespace
}  // namespace vigil

namespace vigil {
namespace {

// Crash 2 (issue 11): [4294967297, 4294967295] wrapped when multiplied.
TEST(Shape, ElementCountsNeverOverflow) {
  EXPECT_EQ(ElementCount({4294967297, 4294967295}), -1);
  EXPECT_EQ(ElementCount({int64_t{1} << 62, 4}), -1);
  EXPECT_EQ(ElementCount({3, 4}), 12);
  EXPECT_FALSE(CheckedElementCount({4294967297, 4294967295}, "input 'x'").ok());
  EXPECT_NE(CheckedElementCount({1, int64_t{1} << 40}, "input 'x'").status().message().find("input 'x': shape"),
            std::string::npos);
  // Zero elements in all, but a row width that would overflow: refused too.
  EXPECT_FALSE(CheckedElementCount({0, int64_t{1} << 32, int64_t{1} << 32}, "x").ok());
  EXPECT_EQ(*CheckedElementCount({0, 30}, "x"), 0);
  EXPECT_EQ(*CheckedElementCount({2, 30}, "x"), 60);
  EXPECT_FALSE(CheckedElementCount(Shape(kMaxTensorRank + 1, 1), "x").ok());
  EXPECT_FALSE(CheckedElementCount({-1, 3}, "x").ok());
}

}  // namespace
}  // namespace vigil
