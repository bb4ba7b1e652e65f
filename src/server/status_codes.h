// The one mapping of a Status to the wire: its HTTP status and its gRPC
// code. Both frontends answer through these, so a code means the same over
// REST and gRPC.
#pragma once

#include "core/status.h"

namespace vigil {

unsigned HttpStatusFor(StatusCode code);
// grpc::StatusCode's value, as an int (this header stays free of gRPC's).
int GrpcCodeFor(StatusCode code);

}  // namespace vigil
