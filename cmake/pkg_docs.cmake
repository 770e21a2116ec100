# cmake -DVERSION_CPP=... -DPROJECT_VERSION=... -DMAINTAINER=... -DSRC=... -DOUT=... -DGZIP=... -P pkg_docs.cmake
# Writes into OUT what the package's docs need at build time: changelog.gz (a Debian changelog
# entry for the version the programs report) and the man pages, gzipped (gzip -9n: no name, no
# timestamp). The date honours SOURCE_DATE_EPOCH.
include("${CMAKE_CURRENT_LIST_DIR}/deb_version.cmake")
hl_deb_version("${VERSION_CPP}" "${PROJECT_VERSION}" deb)
string(TIMESTAMP date "%a, %d %b %Y %H:%M:%S +0000" UTC)
file(MAKE_DIRECTORY "${OUT}")
file(WRITE "${OUT}/changelog" "hopelab (${deb}) unstable; urgency=medium

  * Built from ${deb_UPSTREAM}; the changes are in the project's git history.

 -- ${MAINTAINER}  ${date}
")
foreach(f "${OUT}/changelog" "${SRC}/resources/linux/hopelab.1" "${SRC}/resources/linux/hopelab-cli.1")
  get_filename_component(name "${f}" NAME)
  execute_process(COMMAND "${GZIP}" -9nc "${f}" OUTPUT_FILE "${OUT}/${name}.gz" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip ${f} failed")
  endif()
endforeach()
