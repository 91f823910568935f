#include "core/error.h"

namespace mpq {

Error::Error(const std::string& what) : std::runtime_error(what) {}
Error::Error(const char* what) : std::runtime_error(what) {}
Error::Error(const Error&) noexcept = default;
Error& Error::operator=(const Error&) noexcept = default;
Error::~Error() = default;

void raise_error(fmt::string_view f, fmt::format_args args) { throw Error(fmt::vformat(f, args)); }

}  // namespace mpq
