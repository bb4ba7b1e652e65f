#include <gtest/gtest.h>

#include "net/address.h"
#include "net/http_target.h"

namespace vigil {
namespace {

TEST(AddressRanges, ParseAndMatchIpv4Ipv6AndMappedAddresses) {
  auto ranges = ParseAddressRanges("10.1.0.0/16, 192.168.7.9,fd00::/8");
  ASSERT_TRUE(ranges.ok()) << ranges.status().message();
  EXPECT_TRUE(InAddressRanges(*ranges, "10.1.255.3"));
  EXPECT_FALSE(InAddressRanges(*ranges, "10.2.0.1"));
  EXPECT_TRUE(InAddressRanges(*ranges, "192.168.7.9"));  // a bare address is /32
  EXPECT_FALSE(InAddressRanges(*ranges, "192.168.7.10"));
  EXPECT_TRUE(InAddressRanges(*ranges, "fd12::1"));
  EXPECT_FALSE(InAddressRanges(*ranges, "fe80::1"));
  EXPECT_TRUE(InAddressRanges(*ranges, "::ffff:10.1.2.3"));  // IPv4-mapped IPv6 is its IPv4 address
  EXPECT_FALSE(InAddressRanges(*ranges, "not an address"));
  EXPECT_TRUE(InAddressRanges(*ParseAddressRanges("0.0.0.0/0"), "8.8.8.8"));
  EXPECT_FALSE(InAddressRanges(*ParseAddressRanges("0.0.0.0/0"), "::1"));  // families do not mix
  EXPECT_TRUE(InAddressRanges(LoopbackRanges(), "127.0.0.2"));
  EXPECT_TRUE(InAddressRanges(LoopbackRanges(), "::1"));
  EXPECT_FALSE(InAddressRanges(LoopbackRanges(), "10.0.0.9"));
  for (const char* bad : {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x", "host.example",
                          "10.0.0.1,,10.0.0.2", "10.0.0.0/0008"}) {
    auto r = ParseAddressRanges(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("--admin-allow"), std::string::npos) << r.status().message();
    }
  }
  std::string many;
  for (int i = 0; i < 1025; ++i) many += (i ? "," : "") + std::string("10.0.0.1");
  EXPECT_FALSE(ParseAddressRanges(many).ok());
}

TEST(AddressRanges, LoopbackIsIpv4sSlash8IpV6sOneAndTheirMappedForms) {
  for (const char* a : {"127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1"}) EXPECT_TRUE(IsLoopbackAddress(a)) << a;
  for (const char* a : {"10.0.0.9", "::2", "::ffff:10.0.0.1", "", "localhost"}) EXPECT_FALSE(IsLoopbackAddress(a)) << a;
}

TEST(HttpTarget, PathSegmentsAreDecodedAndTheQueryIsApart) {
  EXPECT_EQ(SplitPath("/v2//models/a%2Fb/infer?x=1"), (std::vector<std::string>{"v2", "models", "a/b", "infer"}));
  EXPECT_EQ(SplitPath("/"), std::vector<std::string>{});
  EXPECT_EQ(PercentDecode("100%25 %zz%4"), "100% %zz%4");  // a bad escape stays as it is
  EXPECT_EQ(QueryOf("/v1/alerts?limit=5&x"), "limit=5&x");
  EXPECT_EQ(QueryOf("/v1/alerts"), "");
  EXPECT_EQ(QueryValue("a=1&b=x%20y&c", "b"), "x y");
  EXPECT_EQ(QueryValue("a=1&b=2&c", "c"), "");
  EXPECT_EQ(QueryValue("a=1", "b"), std::nullopt);
}

TEST(HttpTarget, IntegerParametersOutsideTheirRangeAreRefusedByName) {
  EXPECT_EQ(*IntQuery("", "limit", 100, 1, 1000), 100);
  EXPECT_EQ(*IntQuery("limit=7", "limit", 100, 1, 1000), 7);
  for (const char* bad : {"limit=0", "limit=1001", "limit=", "limit=7x", "limit=99999999999999999999", "limit=-1"}) {
    auto v = IntQuery(bad, "limit", 100, 1, 1000);
    ASSERT_FALSE(v.ok()) << bad;
    EXPECT_NE(v.status().message().find("'limit' must be an integer from 1 to 1000"), std::string::npos)
        << v.status().message();
  }
  auto t = IntQuery("from=x", "from", 0, 0, 10, "Unix milliseconds");
  EXPECT_NE(t.status().message().find("from 0 to 10 (Unix milliseconds), got 'x'"), std::string::npos);
}

TEST(HttpTarget, AWrongMethodIs405WithAllow) {
  HttpRequest r{boost::beast::http::verb::post, "/v1/alerts", 11};
  HttpResponse res = MethodNotAllowed(r, boost::beast::http::verb::get);
  EXPECT_EQ(res.result_int(), 405u);
  EXPECT_EQ(res[boost::beast::http::field::allow], "GET");
  EXPECT_NE(res.body().find("POST is not allowed on /v1/alerts; use GET"), std::string::npos) << res.body();
}

}  // namespace
}  // namespace vigil
