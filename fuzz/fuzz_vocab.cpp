// libFuzzer target: vocab.txt parsing + the WordPiece tokenizer. The input is "VOCAB\0TEXT": VOCAB is parsed as
// a vocab.txt; TEXT is tokenized and encoded with it when it has the special tokens, else with the committed
// BERT's real vocab.txt. Only mpq::Error may escape; every id is in range and the encoding has the length asked.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"
#include "models/data/tokenizer.h"

#ifndef MPQ_SOURCE_DIR
#error "MPQ_SOURCE_DIR must name the source tree (set by CMakeLists.txt)"
#endif

namespace {
void encode_checked(const mpq::data::BertTokenizer& tok, std::string_view text) {
  const std::string s(text);
  for (int32_t id : tok.to_ids(tok.tokenize(s)))
    if (id < 0 || size_t(id) >= tok.vocab().size()) std::abort();
  const auto enc = tok.encode(s, 16);
  if (enc.ids.size() != 16 || enc.mask.size() != 16) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const mpq::data::BertTokenizer real =
      mpq::data::BertTokenizer::from_file(std::string(MPQ_SOURCE_DIR) + "/models/weights/bert-sst2/vocab.txt");
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t cut = in.find('\0');
  const std::string_view vocab_text = in.substr(0, cut), text = cut == in.npos ? in : in.substr(cut + 1);
  try {
    const mpq::data::Vocab v = mpq::data::Vocab::parse(vocab_text, "fuzz/vocab.txt");
    try {
      encode_checked(mpq::data::BertTokenizer(v), text);
    } catch (const mpq::Error&) {  // no special tokens
    }
  } catch (const mpq::Error&) {
  }
  try {
    encode_checked(real, text);
  } catch (const mpq::Error&) {
  }
  return 0;
}
