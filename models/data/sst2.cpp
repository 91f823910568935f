#include "models/data/sst2.h"

#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace mpq::data {

std::vector<Sst2Example> read_sst2(const std::string& path) {
  return parse_sst2(read_text_file(path, kMaxTextFileBytes, "SST-2 file"), path);
}

std::vector<Sst2Example> parse_sst2(std::string_view text, const std::string& path) {
  std::istringstream in{std::string(text)};
  std::vector<Sst2Example> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const size_t tab = line.find('\t');
    check(tab != std::string::npos, "{}:{}: expected 'LABEL<TAB>SENTENCE', no tab found", path, lineno);
    const std::string label = line.substr(0, tab);
    check(label == "0" || label == "1", "{}:{}: label must be 0 or 1, got '{}'", path, lineno, label);
    std::string sentence = line.substr(tab + 1);
    check(sentence.find_first_not_of(" \t") != std::string::npos, "{}:{}: empty sentence", path, lineno);
    out.push_back({label[0] - '0', std::move(sentence)});
  }
  check(!out.empty(), "SST-2 file '{}' has no examples", path);
  return out;
}

}  // namespace mpq::data
