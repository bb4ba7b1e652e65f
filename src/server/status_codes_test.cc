#include "server/status_codes.h"

#include <grpcpp/support/status_code_enum.h>
#include <gtest/gtest.h>

namespace vigil {
namespace {

// Every code, both wires: a failure is never answered 200/OK, and the two
// frontends agree on what each code means.
TEST(StatusCodes, EveryCodeMapsToHttpAndGrpc) {
  struct Row {
    StatusCode code;
    unsigned http;
    grpc::StatusCode grpc;
  };
  const Row rows[] = {
      {StatusCode::kOk, 200, grpc::OK},
      {StatusCode::kInvalidArgument, 400, grpc::INVALID_ARGUMENT},
      {StatusCode::kNotFound, 404, grpc::NOT_FOUND},
      {StatusCode::kUnavailable, 503, grpc::UNAVAILABLE},
      {StatusCode::kResourceExhausted, 429, grpc::RESOURCE_EXHAUSTED},
      {StatusCode::kOverloaded, 503, grpc::RESOURCE_EXHAUSTED},
      {StatusCode::kDeadlineExceeded, 504, grpc::DEADLINE_EXCEEDED},
      {StatusCode::kFailedPrecondition, 409, grpc::FAILED_PRECONDITION},
      {StatusCode::kInternal, 500, grpc::INTERNAL},
      {StatusCode::kUnimplemented, 501, grpc::UNIMPLEMENTED},
      {StatusCode::kUnauthenticated, 401, grpc::UNAUTHENTICATED},
      {StatusCode::kPermissionDenied, 403, grpc::PERMISSION_DENIED},
      {StatusCode::kAborted, 409, grpc::ABORTED},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(HttpStatusFor(r.code), r.http) << StatusCodeName(r.code);
    EXPECT_EQ(GrpcCodeFor(r.code), static_cast<int>(r.grpc)) << StatusCodeName(r.code);
  }
  // The table covers the enum: the last code is the one listed last.
  EXPECT_EQ(static_cast<int>(StatusCode::kAborted) + 1, static_cast<int>(std::size(rows)));
}

}  // namespace
}  // namespace vigil
