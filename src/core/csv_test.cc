#include "core/csv.h"

#include <gtest/gtest.h>

#include <cmath>

namespace vigil {
namespace {

std::vector<std::vector<std::string>> Cells(std::string_view text) {
  auto rows = ParseCsv(text);
  EXPECT_TRUE(rows.ok()) << rows.status().message();
  std::vector<std::vector<std::string>> out;
  if (rows.ok()) {
    for (const auto& r : *rows) out.push_back(r.cells);
  }
  return out;
}

TEST(Csv, QuotedCellsHoldCommasQuotesAndLineBreaks) {
  EXPECT_EQ(Cells("a,b\n1,2\n"), (std::vector<std::vector<std::string>>{{"a", "b"}, {"1", "2"}}));
  EXPECT_EQ(Cells("\"x, y\",\"say \"\"hi\"\"\"\r\n3,\r\n"),
            (std::vector<std::vector<std::string>>{{"x, y", "say \"hi\""}, {"3", ""}}));
  auto rows = ParseCsv("name,note\n1,\"two\nlines\"\n\n2,x");
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 3u);  // the empty line is skipped
  EXPECT_EQ((*rows)[1].cells[1], "two\nlines");
  EXPECT_EQ((*rows)[2].line, 5u);  // lines are counted inside quoted cells too
  EXPECT_EQ(Cells(" \"a\" ,b"), (std::vector<std::vector<std::string>>{{"a", "b"}}));
}

TEST(Csv, MalformedTextIsNamedByLine) {
  auto open = ParseCsv("a\n\"never closed\n");
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("line 2: a quoted cell is not closed"), std::string::npos);
  auto after = ParseCsv("\"a\"b,c");
  ASSERT_FALSE(after.ok());
  EXPECT_NE(after.status().message().find("line 1: text after a closing quote"), std::string::npos);
  EXPECT_FALSE(ParseCsv("1\n2\n3\n", 2).ok());                                 // bounded
  auto header = ParseCsv("a,b\n1,\"never closed\n", 1, /*stop_at_max=*/true);  // the rest is not read
  ASSERT_TRUE(header.ok());
  EXPECT_EQ((*header)[0].cells, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(ParseCsv("").ok());
}

TEST(Csv, NumbersAreWholeCellsAndEmptyIsMissing) {
  EXPECT_EQ(*CsvNumber(" 1.5 "), 1.5);
  EXPECT_EQ(*CsvNumber("+2e3"), 2000);
  EXPECT_TRUE(std::isnan(*CsvNumber("")));
  EXPECT_FALSE(CsvNumber("1.5x").ok());
  EXPECT_FALSE(CsvNumber("yes").ok());
}

}  // namespace
}  // namespace vigil
