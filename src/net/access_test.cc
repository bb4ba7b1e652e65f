#include "net/access.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace vigil {
namespace {

AccessPolicy::Caller From(bool loopback, std::optional<std::string_view> authorization = std::nullopt) {
  return {authorization, loopback, loopback ? "127.0.0.1" : "10.0.0.9", loopback ? "127.0.0.1:5000" : "10.0.0.9:5000"};
}

TEST(AccessPolicy, WithoutTokensOnlyLoopbackMayChangeOrSendFeedback) {
  const AccessPolicy open;
  for (auto scope : {AccessPolicy::Scope::kControl, AccessPolicy::Scope::kFeedback}) {
    EXPECT_TRUE(open.Check(scope, From(true)).ok());
    const Status s = open.Check(scope, From(false));
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
    EXPECT_NE(s.message().find("10.0.0.9:5000 is not loopback"), std::string::npos) << s.message();
  }
}

TEST(AccessPolicy, AdminAllowAdmitsItsRangesAndHoldsWithTokensToo) {
  using S = AccessPolicy::Scope;
  const AccessPolicy only_one("", "", *ParseAddressRanges("127.0.0.1/32"));
  AccessPolicy::Caller other_loopback{std::nullopt, true, "127.0.0.2", "127.0.0.2:5000"};
  EXPECT_TRUE(only_one.Check(S::kControl, From(true)).ok());
  const Status s = only_one.Check(S::kControl, other_loopback);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("--admin-allow admits (127.0.0.2:5000 is not among them)"), std::string::npos)
      << s.message();
  EXPECT_EQ(only_one.Check(S::kFeedback, other_loopback).code(), StatusCode::kPermissionDenied);
  // A network range opens tokenless changes to it.
  const AccessPolicy subnet("", "", *ParseAddressRanges("10.0.0.0/8"));
  EXPECT_TRUE(subnet.Check(S::kControl, From(false)).ok());
  EXPECT_EQ(subnet.Check(S::kControl, From(true)).code(), StatusCode::kPermissionDenied);
  // Given with a token, both are needed.
  const AccessPolicy both("adm1n", "", *ParseAddressRanges("10.0.0.0/8"));
  EXPECT_TRUE(both.Check(S::kControl, From(false, "Bearer adm1n")).ok());
  EXPECT_EQ(both.Check(S::kControl, From(false)).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(both.Check(S::kControl, From(true, "Bearer adm1n")).code(), StatusCode::kPermissionDenied);
  // A local socket (no address) counts as loopback.
  EXPECT_TRUE(only_one.Check(S::kControl, {std::nullopt, true, "", "unix:/tmp/s"}).ok());
  EXPECT_EQ(GrpcPeerAddress("ipv4:127.0.0.2:5000"), "127.0.0.2");
  EXPECT_EQ(GrpcPeerAddress("ipv6:[::1]:5000"), "::1");
  EXPECT_EQ(GrpcPeerAddress("unix:/tmp/s"), "");
}

TEST(AccessPolicy, TokensAreRequiredEvenFromLoopbackOnceSet) {
  const AccessPolicy policy("adm1n", "f33d");
  using S = AccessPolicy::Scope;
  EXPECT_EQ(policy.Check(S::kControl, From(true)).code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(policy.Check(S::kControl, From(false, "Bearer adm1n")).ok());
  EXPECT_EQ(policy.Check(S::kControl, From(true, "Bearer f33d")).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(policy.Check(S::kControl, From(true, "bearer adm1n")).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(policy.Check(S::kControl, From(true, "Bearer adm1")).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(policy.Check(S::kControl, From(true, "Bearer adm1nX")).code(), StatusCode::kUnauthenticated);
  EXPECT_TRUE(policy.Check(S::kFeedback, From(false, "Bearer f33d")).ok());
  EXPECT_TRUE(policy.Check(S::kFeedback, From(false, "Bearer adm1n")).ok());
  EXPECT_EQ(policy.Check(S::kFeedback, From(true)).code(), StatusCode::kUnauthenticated);
  // A feedback token alone guards feedback and leaves control on loopback.
  const AccessPolicy feedback_only("", "f33d");
  EXPECT_TRUE(feedback_only.Check(S::kControl, From(true)).ok());
  EXPECT_EQ(feedback_only.Check(S::kControl, From(false, "Bearer f33d")).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(feedback_only.Check(S::kFeedback, From(true)).code(), StatusCode::kUnauthenticated);
}

TEST(AccessPolicy, ConstantTimeEqualsComparesEveryByte) {
  EXPECT_TRUE(ConstantTimeEquals("s3cret", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("s3cre", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("s3cretX", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("X3cret", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals(std::string_view("s3cre\0", 6), "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("", "s3cret"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

TEST(AccessPolicy, LoopbackPeers) {
  EXPECT_TRUE(IsLoopbackPeer("ipv4:127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackPeer("ipv4:127.8.9.10:1"));
  EXPECT_TRUE(IsLoopbackPeer("ipv6:[::1]:50051"));
  EXPECT_TRUE(IsLoopbackPeer("ipv6:[::ffff:127.0.0.1]:50051"));
  EXPECT_TRUE(IsLoopbackPeer("unix:/tmp/socket"));
  EXPECT_FALSE(IsLoopbackPeer("ipv4:10.1.2.3:50051"));
  EXPECT_FALSE(IsLoopbackPeer("ipv6:[fe80::1%25eth0]:50051"));
  EXPECT_FALSE(IsLoopbackPeer("ipv6:[::ffff:10.0.0.1]:50051"));
  EXPECT_FALSE(IsLoopbackPeer("ipv6:::1"));
  EXPECT_FALSE(IsLoopbackPeer("nonsense"));
  EXPECT_TRUE(IsLoopbackAddress("::ffff:127.0.0.1"));
  EXPECT_FALSE(IsLoopbackAddress("192.168.1.1"));
}

TEST(AccessPolicy, TokenFilesHoldTheTokenOnTheirFirstLine) {
  const auto path = std::filesystem::temp_directory_path() / "vigil_token_test";
  std::ofstream(path) << "  t0ken \nsecond line\n";
  EXPECT_EQ(*ReadTokenFile(path.string()), "t0ken");
  std::ofstream(path) << "\n";
  EXPECT_FALSE(ReadTokenFile(path.string()).ok());
  std::filesystem::remove(path);
  EXPECT_NE(ReadTokenFile(path.string()).status().message().find("cannot read"), std::string::npos);
}

}  // namespace
}  // namespace vigil
