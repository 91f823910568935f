// The one rule for writing output files: check the destination before the work starts
// (check_destination), then write the whole content to a unique temporary file beside the target
// (mkstemp, so two writers never share one), check every write, fsync, and rename it over the target
// (atomic on POSIX file systems: a reader sees the old file or the new one, never a half-written one).
// Every failure throws mpq::Error naming the file.
#pragma once
#include <string>
#include <string_view>

namespace mpq {

// The folder that will hold `path` exists (or, with create_parent, is created) and is writable, and `path`
// is not an existing directory. `what` names the output in messages ("--out", "report").
void check_destination(const std::string& path, std::string_view what, bool create_parent = false);

// Creates `dir` (and its parents) if needed and checks it is a writable directory.
void ensure_directory(const std::string& dir, std::string_view what);

void write_file_atomic(const std::string& path, std::string_view content);

}  // namespace mpq
