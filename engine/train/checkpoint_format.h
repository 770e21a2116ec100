// The version of Hope Lab's checkpoint layout (the "hopelab.*" keys of a .pt archive beside the
// model and optimizer states). Every checkpoint records it; resume and inference refuse a version
// this build does not read, naming the file and both versions, instead of failing on a missing or
// reinterpreted key.
//   1: checkpoints written before the version existed (no "hopelab.format_version" key). Read as
//      is: version 2 only added the key.
//   2: the key "hopelab.format_version".
#pragma once
#include <cstdint>
#include <string>

#include "engine/torch_wrap.h"

namespace hl::train {

constexpr int64_t kCheckpointFormat = 2;
constexpr const char* kCheckpointFormatKey = "hopelab.format_version";

void write_checkpoint_format(torch::serialize::OutputArchive& ar);
// The archive's format version; throws hl::RunError naming `path` when this build cannot read it.
int64_t check_checkpoint_format(torch::serialize::InputArchive& ar, const std::string& path);

}  // namespace hl::train
