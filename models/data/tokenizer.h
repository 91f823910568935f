// BERT WordPiece tokenization, reproducing Hugging Face's (slow, Python) BertTokenizer with
// do_lower_case=True, tokenize_chinese_chars=True, strip_accents=None (follows lower-casing):
//
//   BasicTokenizer
//     1. clean: drop U+0000, U+FFFD and "control" characters, which HF's transformers defines as any
//        Unicode category C* (Cc, Cf, Cs, Co private use, Cn unassigned) except \t \n \r (Google's
//        original BERT code only drops Cc/Cf); every whitespace character (space, \t, \n, \r, Unicode
//        Zs) becomes ' '.
//     2. put spaces around CJK ideographs (the same code point blocks as HF's _is_chinese_char).
//     3. split on whitespace; per word: lower-case, strip accents (NFD, then drop Mn marks), split
//        every punctuation character off as its own token (ASCII 33-47, 58-64, 91-96, 123-126 and
//        Unicode category P*).
//   WordpieceTokenizer: greedy longest-match-first; non-initial pieces carry the "##" prefix; a word
//     longer than max_input_chars_per_word code points, or with any unmatchable remainder, becomes
//     one [UNK].
//
// Unicode data is approximated by built-in tables (generated from Python's unicodedata, Unicode 14):
//   - lower-casing: ASCII, Latin-1 Supplement, Latin Extended-A, basic Greek and Cyrillic capitals
//     (U+0130 'İ' lower-cases to "i" + U+0307 in Python; the mark is then stripped, so it maps to "i";
//     Python's word-final 'Σ' -> 'ς' rule is not reproduced, 'Σ' always becomes 'σ');
//   - accent stripping: code points U+00C0..U+024F and U+1E00..U+1EFF whose canonical decomposition is
//     one ASCII letter + combining marks map to that letter ('é' -> 'e'); letters without a canonical
//     decomposition (ø, æ, ß, đ, ł, ı) are kept, as in HF; combining marks (U+0300..U+036F,
//     U+1AB0..U+1AFF, U+1DC0..U+1DFF, U+20D0..U+20FF, U+FE20..U+FE2F) are dropped. Other scripts'
//     precomposed accented letters (e.g. Greek tonos) are left unchanged.
//   - punctuation P*, whitespace Zs and the C* categories: full Unicode 14 tables (Cn, i.e. which code
//     points are unassigned, depends on the Unicode version of the Python that runs HF).
// Invalid UTF-8 bytes decode to U+FFFD and are therefore dropped by step 1.
// Not reproduced: HF's special-token splitting of the raw text ("[MASK]" typed in the input is
// tokenized like ordinary text here).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace mpq::data {

class Vocab {
 public:
  Vocab() = default;
  // id = position in the list. Throws on duplicate or empty tokens.
  explicit Vocab(std::vector<std::string> tokens);
  // vocab.txt: one token per line, id = 0-based line number ('\r' before '\n' is dropped).
  // Throws naming the file (and FILE:LINE for an empty or duplicate token).
  static Vocab load(const std::string& path);
  void save(const std::string& path) const;

  size_t size() const { return tokens_.size(); }
  int32_t id(std::string_view token) const;  // -1 if absent
  bool contains(std::string_view token) const { return id(token) >= 0; }
  const std::string& token(int32_t id) const;
  const std::vector<std::string>& tokens() const { return tokens_; }

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> ids_;
};

struct TokenizerOptions {
  bool do_lower_case = true;  // also enables accent stripping (HF strip_accents=None)
  int max_input_chars_per_word = 100;
};

struct Encoding {
  std::vector<int32_t> ids;   // [CLS] pieces [SEP] [PAD]...
  std::vector<int32_t> mask;  // 1 for real tokens (incl. [CLS]/[SEP]), 0 for padding
};

struct BatchEncoding {
  Tensor ids;   // [B, L] i32
  Tensor mask;  // [B, L] i32
};

enum class Padding { MaxLength, Longest };

class BertTokenizer {
 public:
  // Throws if [PAD], [UNK], [CLS] or [SEP] is missing from the vocab.
  explicit BertTokenizer(Vocab vocab, TokenizerOptions opts = {});
  static BertTokenizer from_file(const std::string& vocab_txt, TokenizerOptions opts = {});

  std::vector<std::string> basic_tokenize(std::string_view text) const;
  std::vector<std::string> wordpiece(const std::string& word) const;
  std::vector<std::string> tokenize(std::string_view text) const;  // basic + wordpiece
  std::vector<int32_t> to_ids(const std::vector<std::string>& pieces) const;

  // Truncates the pieces to max_len - 2 (max_len >= 2), adds [CLS]/[SEP], and with pad=true pads
  // with [PAD] up to max_len.
  Encoding encode(std::string_view text, int max_len, bool pad = true) const;
  // Padding::MaxLength pads every row to max_len; Padding::Longest to the longest row (<= max_len).
  BatchEncoding encode_batch(const std::vector<std::string>& texts, int max_len,
                             Padding padding = Padding::MaxLength) const;

  const Vocab& vocab() const { return vocab_; }
  int32_t pad_id() const { return pad_; }
  int32_t unk_id() const { return unk_; }
  int32_t cls_id() const { return cls_; }
  int32_t sep_id() const { return sep_; }

 private:
  Vocab vocab_;
  TokenizerOptions opts_;
  int32_t pad_ = 0, unk_ = 0, cls_ = 0, sep_ = 0;
};

// Builds a WordPiece vocab from a corpus. Deterministic scheme (not HF's likelihood-based trainer):
//   1. [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4;
//   2. every character seen in the basic-tokenized corpus, then its "##" form, both in code point
//      order (so every word of a seen alphabet is tokenizable without [UNK]);
//   3. whole words (length >= 2 code points, count >= min_frequency) by (count desc, word asc), at most
//      80% of the remaining budget;
//   4. "##" suffixes (2..10 code points) of the words NOT taken in step 3, scored by the summed count
//      of those words, count >= min_frequency, by (score desc, piece asc), filling the budget;
//   5. any budget left goes to the next words of step 3's order.
// Stops at target_size tokens (steps 1-2 are always kept even if they exceed it).
Vocab build_wordpiece_vocab(const std::vector<std::string>& sentences, size_t target_size,
                            int64_t min_frequency = 2, const TokenizerOptions& opts = {});

// Fraction of produced pieces that are [UNK] (excluding [CLS]/[SEP]/[PAD]); 0 for no pieces.
double unk_rate(const BertTokenizer& tok, const std::vector<std::string>& sentences);

}  // namespace mpq::data
