// hopelab-cli: the headless front end of the Hope Lab engine.
// Exit codes: 0 ok, 2 usage/spec error, 3 data error, 4 run failed/diverged, 5 store error,
// 130 cancelled (Ctrl-C).
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "engine/common/error.h"
#include "engine/common/version.h"

int main(int argc, char** argv) {
  CLI::App app{std::string("hopelab-cli: train, store, compare and export Nested Learning experiments (Hope Lab ") +
               hl::app_version() + ")"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(hl::app_version()));
  hl::cli::Commands cmds(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // every usage error maps to 2
  }
  try {
    return cmds.run();
  } catch (const hl::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return e.exitCode();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 4;
  }
}
