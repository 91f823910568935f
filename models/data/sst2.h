// SST-2 sentiment files: one example per line, "LABEL<TAB>SENTENCE", LABEL 0 (negative) or 1 (positive).
// The shared copies are lower-cased and pre-tokenized (brackets written -lrb- / -rrb-). No header line.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace mpq::data {

struct Sst2Example {
  int label = 0;
  std::string sentence;
};

// Reads every line (a trailing '\r' is dropped; blank lines are skipped). Throws mpq::Error naming
// FILE:LINE on a line without a tab, a label other than 0/1, or an empty sentence; also on a missing
// or empty file.
std::vector<Sst2Example> read_sst2(const std::string& path);  // regular files only (core/file_io.h)
// The same on file contents; `path` names the source in messages.
std::vector<Sst2Example> parse_sst2(std::string_view text, const std::string& path);

}  // namespace mpq::data
