#include "engine/train/checkpoint_format.h"

#include "engine/common/error.h"

namespace hl::train {

void write_checkpoint_format(torch::serialize::OutputArchive& ar) {
  ar.write(kCheckpointFormatKey, c10::IValue(kCheckpointFormat));
}

int64_t check_checkpoint_format(torch::serialize::InputArchive& ar, const std::string& path) {
  c10::IValue v;
  int64_t format = 1;  // before the key existed
  if (ar.try_read(kCheckpointFormatKey, v)) {
    if (!v.isInt()) throw RunError(path + ": malformed checkpoint (" + kCheckpointFormatKey + " is not an integer)");
    format = v.toInt();
  }
  if (format < 1 || format > kCheckpointFormat)
    throw RunError(path + ": checkpoint format version " + std::to_string(format) + ", but this Hope Lab build reads " +
                   "versions 1 to " + std::to_string(kCheckpointFormat) + " (" +
                   (format > kCheckpointFormat ? "written by a newer Hope Lab: use that version to resume or load it"
                                               : "not a Hope Lab checkpoint, or damaged") +
                   ")");
  return format;
}

}  // namespace hl::train
