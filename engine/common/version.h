// The Hope Lab version a run records: `git describe --always --dirty` of the tree this binary was
// built from, refreshed at every build (cmake/version.cmake); the project version without git.
#pragma once

namespace hl {

const char* app_version();

}  // namespace hl
