// mpq: the command-line tool. Subcommands are added as the pieces land.
#include <fmt/format.h>

#include <cstring>
#include <string>

#include "core/error.h"

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    fmt::print("usage: mpq <command> [options]\n");
    return argc < 2 ? 2 : 0;
  }
  fmt::print(stderr, "mpq: unknown command '{}'\n", argv[1]);
  return 2;
}
