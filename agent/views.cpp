#include "agent/views.h"

#include <string>

namespace psnic {

std::string_view op_name(ErrorOp op) {
  switch (op) {
    case ErrorOp::kAttach:
      return "attach";
    case ErrorOp::kReadMap:
      return "read_map";
    case ErrorOp::kReadStats:
      return "read_stats";
    case ErrorOp::kReconcile:
      return "reconcile";
    case ErrorOp::kIdentify:
      return "identify";
    case ErrorOp::kDescribe:
      return "describe";
    case ErrorOp::kCollect:
      return "collect";
  }
  return "unknown";
}

}  // namespace psnic
