# Installation (cmake --install) and the Debian package (cpack). See README, "Installing".
#
#   <bindir>/hopelab, hopelab-cli           launchers (cmake/launcher.sh.in): find LibTorch, then run
#   <libexecdir>/hopelab/hopelab, -cli      the programs (no RUNPATH: the launcher sets the path)
#   <datadir>/applications/<id>.desktop     desktop entry
#   <datadir>/metainfo/<id>.metainfo.xml    AppStream metadata
#   <datadir>/icons/hicolor/*/apps/<id>.*   icon: scalable SVG and PNGs rendered from it
#   <datadir>/hopelab/presets/*.json        the built-in presets as files (the programs have them
#                                           compiled in; these are to read, copy and edit)
#   <docdir>/README.md, LICENSE, copyright, changelog.gz, docs/
#   <mandir>/man1/hopelab.1.gz, hopelab-cli.1.gz
#
# LibTorch is not installed or packaged: the launchers look for it at run time.

set(HOPELAB_APP_ID "io.github.hopelab.HopeLab")  # the desktop/AppStream id (names the files above)

# LibTorch: where this build found it, its version and the libraries the programs load from it.
get_filename_component(HL_TORCH_LIBDIR "${Torch_DIR}/../../../lib" ABSOLUTE)
string(REGEX MATCH "^[0-9]+\\.[0-9]+\\.[0-9]+" HOPELAB_TORCH_VERSION "${Torch_VERSION}")
set(HOPELAB_TORCH_FALLBACK "${HL_TORCH_LIBDIR}" CACHE STRING
  "The launchers' last place to look for LibTorch (default: this build's; empty for a package to distribute)")
set(HL_TORCH_NEEDED "libtorch.so libtorch_cpu.so libc10.so")
if(EXISTS "${HL_TORCH_LIBDIR}/libtorch_cuda.so")  # a CUDA build of torch: the programs link it
  string(APPEND HL_TORCH_NEEDED " libtorch_cuda.so")
endif()

# The programs: no RUNPATH (CMake drops the build tree's on install); the launchers set the path.
set(HL_PROGRAMS hopelab-cli)
if(HOPELAB_GUI)
  list(APPEND HL_PROGRAMS hopelab)
endif()
install(TARGETS ${HL_PROGRAMS} RUNTIME DESTINATION ${HOPELAB_INSTALL_LIBEXECDIR})
file(RELATIVE_PATH HL_LIBEXEC_REL "${CMAKE_INSTALL_FULL_BINDIR}"
  "${CMAKE_INSTALL_FULL_LIBEXECDIR}/hopelab")
set(HL_TORCH_FALLBACK "${HOPELAB_TORCH_FALLBACK}")
if(HL_TORCH_FALLBACK)
  set(HL_TORCH_FALLBACK_NOTE "${HL_TORCH_FALLBACK} (where this build found it)")
else()
  set(HL_TORCH_FALLBACK_NOTE "(no build-time fallback: HOPELAB_TORCH_FALLBACK was empty)")
endif()
foreach(HL_EXE IN LISTS HL_PROGRAMS)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/launcher.sh.in ${PROJECT_BINARY_DIR}/launchers/${HL_EXE} @ONLY)
  install(PROGRAMS ${PROJECT_BINARY_DIR}/launchers/${HL_EXE} DESTINATION ${CMAKE_INSTALL_BINDIR})
endforeach()

install(DIRECTORY ${PROJECT_SOURCE_DIR}/resources/presets/ DESTINATION ${CMAKE_INSTALL_DATADIR}/hopelab/presets
  FILES_MATCHING PATTERN "*.json")
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/LICENSE
  ${PROJECT_SOURCE_DIR}/resources/linux/copyright DESTINATION ${HOPELAB_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${HOPELAB_INSTALL_DOCDIR}/docs)
# The man pages and a Debian changelog entry, gzipped at build time (cmake/pkg_docs.cmake).
set(HL_PACKAGE_MAINTAINER "Hope Lab maintainers <maintainers@users.noreply.r-seed-98d50a1d.example>")
find_program(HL_GZIP gzip REQUIRED)
set(HL_PKGDOCS ${PROJECT_BINARY_DIR}/pkgdocs)
add_custom_command(OUTPUT ${HL_PKGDOCS}/changelog.gz ${HL_PKGDOCS}/hopelab.1.gz ${HL_PKGDOCS}/hopelab-cli.1.gz
  COMMAND ${CMAKE_COMMAND} -DVERSION_CPP=${HOPELAB_VERSION_CPP} -DPROJECT_VERSION=${PROJECT_VERSION}
          -DMAINTAINER=${HL_PACKAGE_MAINTAINER} -DSRC=${PROJECT_SOURCE_DIR} -DOUT=${HL_PKGDOCS} -DGZIP=${HL_GZIP}
          -P ${PROJECT_SOURCE_DIR}/cmake/pkg_docs.cmake
  DEPENDS ${HOPELAB_VERSION_CPP} ${PROJECT_SOURCE_DIR}/cmake/pkg_docs.cmake ${PROJECT_SOURCE_DIR}/cmake/deb_version.cmake
          ${PROJECT_SOURCE_DIR}/resources/linux/hopelab.1 ${PROJECT_SOURCE_DIR}/resources/linux/hopelab-cli.1
  COMMENT "Man pages and changelog for the package" VERBATIM)
add_custom_target(hopelab_pkgdocs ALL DEPENDS ${HL_PKGDOCS}/changelog.gz ${HL_PKGDOCS}/hopelab.1.gz
  ${HL_PKGDOCS}/hopelab-cli.1.gz)
add_dependencies(hopelab_pkgdocs hopelab_version)
install(FILES ${HL_PKGDOCS}/changelog.gz DESTINATION ${HOPELAB_INSTALL_DOCDIR})
install(FILES ${HL_PKGDOCS}/hopelab-cli.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
if(HOPELAB_GUI)
  install(FILES ${HL_PKGDOCS}/hopelab.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()

if(HOPELAB_GUI)
  configure_file(${PROJECT_SOURCE_DIR}/resources/linux/hopelab.desktop.in
    ${PROJECT_BINARY_DIR}/linux/${HOPELAB_APP_ID}.desktop @ONLY)
  configure_file(${PROJECT_SOURCE_DIR}/resources/linux/hopelab.metainfo.xml.in
    ${PROJECT_BINARY_DIR}/linux/${HOPELAB_APP_ID}.metainfo.xml @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/linux/${HOPELAB_APP_ID}.desktop DESTINATION ${CMAKE_INSTALL_DATADIR}/applications)
  install(FILES ${PROJECT_BINARY_DIR}/linux/${HOPELAB_APP_ID}.metainfo.xml DESTINATION ${CMAKE_INSTALL_DATADIR}/metainfo)
  # Icons: the SVG as is, and PNGs rendered from it at build time (hl_render_icon, Qt Svg).
  install(FILES ${PROJECT_SOURCE_DIR}/resources/icons/hopelab.svg
    DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor/scalable/apps RENAME ${HOPELAB_APP_ID}.svg)
  set(HL_ICON_SIZES 48 64 128 256)
  add_executable(hl_render_icon ${PROJECT_SOURCE_DIR}/app/gui/render_icon.cpp)
  target_link_libraries(hl_render_icon PRIVATE Qt6::Gui Qt6::Svg)
  set(HL_ICON_PNGS "")
  foreach(n IN LISTS HL_ICON_SIZES)
    list(APPEND HL_ICON_PNGS ${PROJECT_BINARY_DIR}/icons/${n}x${n}/hopelab.png)
    install(FILES ${PROJECT_BINARY_DIR}/icons/${n}x${n}/hopelab.png
      DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor/${n}x${n}/apps RENAME ${HOPELAB_APP_ID}.png)
  endforeach()
  add_custom_command(OUTPUT ${HL_ICON_PNGS}
    COMMAND hl_render_icon ${PROJECT_SOURCE_DIR}/resources/icons/hopelab.svg ${PROJECT_BINARY_DIR}/icons
            ${HL_ICON_SIZES}
    DEPENDS hl_render_icon ${PROJECT_SOURCE_DIR}/resources/icons/hopelab.svg
    COMMENT "Rendering the app icon (${HL_ICON_SIZES} px)" VERBATIM)
  add_custom_target(hopelab_icons ALL DEPENDS ${HL_ICON_PNGS})
endif()

# The Debian package: cpack in the build folder writes hopelab_<version>_<arch>.deb.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME hopelab)
set(CPACK_PACKAGE_VENDOR "Hope Lab")
set(CPACK_PACKAGE_CONTACT "${HL_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "workbench for Nested Learning research")
# (Debian wants description lines under 80 characters: they are broken here.)
set(CPACK_PACKAGE_DESCRIPTION "Hope Lab trains Hope variants (self-modifying Titans with Continuum
Memory System levels) and baselines class-incrementally on text classification
data, keeps every run in SQLite, and compares and exports them: the desktop
app hopelab and the command-line tool hopelab-cli.

LibTorch ${HOPELAB_TORCH_VERSION} is not part of this package. The launchers look for it in
$HOPELAB_TORCH_DIR, ~/.cache/hopelab/torch-${HOPELAB_TORCH_VERSION} (a venv with torch ${HOPELAB_TORCH_VERSION})
and /opt/hopelab/libtorch.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Library dependencies from dpkg-shlibdeps. LibTorch's libraries belong to no Debian package: they
# are found in the build's LibTorch folder and left out of Depends (CPack passes
# --ignore-missing-info). Qt's platform plugins are loaded at run time, so they are named here.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS "${HL_TORCH_LIBDIR}")
if(HOPELAB_GUI)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "qt6-qpa-plugins")
  set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "xdg-utils, fonts-dejavu-core")
endif()
# The package version is the one the programs report (cmake/version.cmake, at build time), so it
# is read when cpack runs, not when CMake configures.
set(HL_VERSION_CPP "${HOPELAB_VERSION_CPP}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/cpack_options.cmake.in ${PROJECT_BINARY_DIR}/CPackOptions.cmake @ONLY)
set(CPACK_PROJECT_CONFIG_FILE ${PROJECT_BINARY_DIR}/CPackOptions.cmake)
include(CPack)
