// mpq: the command-line tool. Each subcommand lives in tools/cmd_*.cpp and registers itself.
#include <fmt/format.h>

#include <cstring>
#include <string>

#include "core/error.h"
#include "core/threading.h"
#include "tools/cli.h"

int main(int argc, char** argv) {
  auto& reg = mpq::cli::registry();
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    fmt::print("usage: mpq <command> [options]\n\ncommands:\n");
    for (const auto& [name, c] : reg) fmt::print("  {:<10} {}\n", name, c.summary);
    return argc < 2 ? 2 : 0;
  }
  auto it = reg.find(argv[1]);
  if (it == reg.end()) {
    fmt::print(stderr, "mpq: unknown command '{}' (mpq --help lists them)\n", argv[1]);
    return 2;
  }
  try {
    mpq::cli::Args args(argc, argv, 2);
    if (args.has("help")) {
      fmt::print("usage: {}\n", it->second.usage);
      return 0;
    }
    mpq::set_num_threads(args.get_int("threads", 0));
    return it->second.run(args);
  } catch (const std::exception& e) {
    fmt::print(stderr, "mpq {}: error: {}\n", argv[1], e.what());
    return 1;
  }
}
