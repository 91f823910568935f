// mpq: the command-line tool. Each subcommand lives in tools/cmd_*.cpp and registers itself; exit status
// 0 success, 1 runtime error, 2 usage error, 3 search outside the range on the test split (tools/cli.h).
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/memory_policy.h"
#include "core/threading.h"
#include "tools/cli.h"
#include "tools/progress.h"

namespace {

// The ISA the kernel dispatch uses on this machine: the widest level that is both detected and under the
// cap (MPQ_ISA).
const char* dispatch_isa() {
  using mpq::Isa;
  for (Isa i : {Isa::avx512_bf16, Isa::avx512_vnni, Isa::avx512, Isa::avx_vnni, Isa::avx2})
    if (mpq::isa_enabled(i)) return mpq::isa_name(i);
  return mpq::isa_name(Isa::ref);
}

bool is_help(const char* a) { return std::strcmp(a, "--help") == 0 || std::strcmp(a, "-h") == 0; }

}  // namespace

int main(int argc, char** argv) {
  using namespace mpq::cli;
  mpq::keep_freed_memory_for_reuse();  // core/memory_policy.h: the demo's wall time 352 s -> 149 s
  auto& reg = registry();
  if (argc < 2 || is_help(argv[1]) || std::strcmp(argv[1], "help") == 0) {
    fmt::print(
        "usage: mpq <command> [options]   (mpq <command> --help for its options; global: --threads N, --quiet)\n"
        "exit status: 0 success, 1 runtime error, 2 usage error, 3 search outside the range on the test split\n\n"
        "commands:\n");
    for (const auto& [name, c] : reg) fmt::print("  {:<10} {}\n", name, c.summary);
    return argc < 2 ? kExitUsage : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    fmt::print("mpq {} (git {}), kernels dispatch {} (ISA cap {})\n", MPQ_VERSION, MPQ_GIT_REVISION, dispatch_isa(),
               mpq::isa_name(mpq::isa_cap()));
    return 0;
  }
  auto it = reg.find(argv[1]);
  if (it == reg.end()) {
    fmt::print(stderr, "mpq: unknown command '{}' (mpq --help lists them)\n", argv[1]);
    return kExitUsage;
  }
  try {
    for (int i = 2; i < argc; ++i)
      if (std::strcmp(argv[i], "-h") == 0) argv[i] = const_cast<char*>("--help");
    Args args(argc, argv, 2);
    if (args.has("help")) {
      fmt::print("usage: {}\n", it->second.usage);
      return 0;
    }
    console().quiet = args.flag("quiet");
    console().tty = isatty(STDERR_FILENO) == 1;
    mpq::set_num_threads(int(args.get_int("threads", 0, 0, kMaxThreads)));
    if (args.has("model")) args.get_choice("model", "", {"resnet50", "mobilenetv2", "bert"});
    return it->second.run(args);
  } catch (const UsageError& e) {
    fmt::print(stderr, "mpq {}: usage error: {}\n", argv[1], e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "mpq {}: error: {}\n", argv[1], e.what());
    return kExitRuntimeError;
  }
}
