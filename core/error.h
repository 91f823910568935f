// The project's one exception type. Messages name the offending file, field, shape or value.
//
// Everything that builds or destroys an Error is defined out of line (core/error.cpp): the per-ISA kernel
// translation units (ops/kernels/x86/*__avx512*.cpp, compiled with their own -m flags) call check(), and an
// inline destructor or fmt::format instantiation emitted there would be a weak symbol that the linker may pick
// for the whole program, AVX-512 code included (tests: isa_objects_share_no_code).
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace mpq {

struct Error : std::runtime_error {
  explicit Error(const std::string& what);
  explicit Error(const char* what);
  Error(const Error&) noexcept;
  Error& operator=(const Error&) noexcept;
  ~Error() override;
};

// Formats `f` with `args` and throws Error; the one place a message is formatted and thrown.
[[noreturn]] void raise_error(fmt::string_view f, fmt::format_args args);

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  raise_error(f, fmt::make_format_args(args...));
}

template <class... Args>
inline void check(bool cond, fmt::format_string<Args...> f, Args&&... args) {
  if (!cond) raise_error(f, fmt::make_format_args(args...));
}

}  // namespace mpq
