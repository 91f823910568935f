#include "models/data/tokenizer.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "models/data/unicode_tables.h"

namespace mpq::data {
namespace {

using unicode::Range;

template <size_t N>
bool in_ranges(const Range (&rs)[N], char32_t cp) {
  const auto it =
      std::upper_bound(std::begin(rs), std::end(rs), cp, [](char32_t c, const Range& r) { return c < r.lo; });
  return it != std::begin(rs) && cp <= std::prev(it)->hi;
}

bool is_whitespace(char32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || (cp >= 0x80 && in_ranges(unicode::kSpace, cp));
}
// Python's str.split() also splits on these (Zl, Zp); they survive cleaning because they are not Zs.
bool is_split_space(char32_t cp) { return cp == ' ' || cp == 0x2028 || cp == 0x2029; }

// HF transformers' _is_control: any category C* except \t \n \r.
bool is_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return true;  // Cc
  return cp > 0x9F && in_ranges(unicode::kOtherC, cp);       // Cf, Cs, Co, Cn
}

bool is_punctuation(char32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
    return true;
  return cp >= 0x80 && in_ranges(unicode::kPunct, cp);
}

// HF's _is_chinese_char blocks (CJK Unified Ideographs + extensions + compatibility ideographs).
bool is_cjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Appends HF's lower() + _run_strip_accents() of one code point (NFD, Mn dropped) to out.
void append_folded(char32_t cp, std::u32string& out) {
  if (cp < 0x80) {
    out.push_back(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  if (in_ranges(unicode::kMn, cp)) return;
  if (cp >= 0xAC00 && cp <= 0xD7A3) {  // Hangul syllable: NFD is algorithmic, L V [T] jamo
    const char32_t s = cp - 0xAC00;
    out.push_back(0x1100 + s / 588);
    out.push_back(0x1161 + (s % 588) / 28);
    if (s % 28 != 0) out.push_back(0x11A7 + s % 28);
    return;
  }
  const auto* f = std::lower_bound(std::begin(unicode::kFold), std::end(unicode::kFold), cp,
                                   [](const unicode::Fold& e, char32_t c) { return e.from < c; });
  if (f != std::end(unicode::kFold) && f->from == cp) {
    out.push_back(f->to);
    return;
  }
  for (const unicode::FoldMulti& m : unicode::kFoldMulti)
    if (m.from == cp) {
      for (char32_t c : m.to)
        if (c != 0) out.push_back(c);
      return;
    }
  out.push_back(cp);
}

// UTF-8 -> code points; malformed sequences, overlongs, surrogates and > U+10FFFF become U+FFFD.
std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    int n = 0;
    char32_t cp = 0, min = 0;
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    } else if ((b & 0xE0) == 0xC0) {
      n = 1, cp = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      n = 2, cp = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      n = 3, cp = b & 0x07, min = 0x10000;
    } else {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    int k = 1;
    for (; k <= n && i + size_t(k) < s.size(); ++k) {
      const auto c = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((c & 0xC0) != 0x80) break;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (k <= n || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      out.push_back(0xFFFD);
      i += size_t(std::max(k, 1));
      continue;
    }
    out.push_back(cp);
    i += size_t(n) + 1;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

std::string to_utf8(const std::u32string& s, size_t begin = 0, size_t end = std::u32string::npos) {
  std::string out;
  end = std::min(end, s.size());
  for (size_t i = begin; i < end; ++i) append_utf8(out, s[i]);
  return out;
}

// Basic tokenization on code points (see tokenizer.h steps 1-3).
std::vector<std::u32string> basic_tokens(std::string_view text, bool lower) {
  std::vector<std::u32string> out;
  std::u32string cur, folded;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (char32_t cp : decode_utf8(text)) {
    if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
    if (is_whitespace(cp) || is_split_space(cp)) {
      flush();
      continue;
    }
    // Folding (lower-case + NFD + drop Mn) is per code point, so it can run before the word split. A CJK
    // ideograph is a token of its own (HF surrounds it with spaces before folding; folding maps the
    // compatibility ideographs U+F900.. to unified ones and never yields punctuation or spaces).
    folded.clear();
    if (lower) {
      append_folded(cp, folded);
    } else {
      folded.push_back(cp);
    }
    if (is_cjk(cp)) {
      flush();
      if (!folded.empty()) out.push_back(folded);
      continue;
    }
    for (char32_t c : folded) {
      if (is_punctuation(c)) {
        flush();
        out.push_back(std::u32string(1, c));
      } else {
        cur.push_back(c);
      }
    }
  }
  flush();
  return out;
}

}  // namespace

// ---------------- Vocab ----------------

Vocab::Vocab(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {
  ids_.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    check(!tokens_[i].empty(), "vocab: empty token at id {}", i);
    check(ids_.emplace(tokens_[i], int32_t(i)).second, "vocab: duplicate token '{}' at id {}", tokens_[i], i);
  }
}

Vocab Vocab::load(const std::string& path) {
  return parse(read_text_file(path, kMaxTextFileBytes, "vocab file"), path);
}

Vocab Vocab::parse(std::string_view text, const std::string& path) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> tokens;
  std::set<std::string> seen;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    check(!line.empty(), "{}:{}: empty token", path, lineno);
    check(seen.insert(line).second, "{}:{}: duplicate token '{}'", path, lineno, line);
    tokens.push_back(line);
  }
  check(!tokens.empty(), "vocab file '{}' is empty", path);
  return Vocab(std::move(tokens));
}

void Vocab::save(const std::string& path) const {
  std::string text;
  for (const std::string& t : tokens_) text += t + '\n';
  write_file_atomic(path, text);
}

int32_t Vocab::id(std::string_view token) const {
  const auto it = ids_.find(std::string(token));
  return it == ids_.end() ? -1 : it->second;
}

const std::string& Vocab::token(int32_t id) const {
  check(id >= 0 && size_t(id) < tokens_.size(), "vocab: id {} out of range (size {})", id, tokens_.size());
  return tokens_[size_t(id)];
}

// ---------------- BertTokenizer ----------------

BertTokenizer::BertTokenizer(Vocab vocab, TokenizerOptions opts) : vocab_(std::move(vocab)), opts_(opts) {
  auto need = [&](const char* t) {
    const int32_t i = vocab_.id(t);
    check(i >= 0, "vocab ({} tokens) lacks the special token {}", vocab_.size(), t);
    return i;
  };
  pad_ = need("[PAD]");
  unk_ = need("[UNK]");
  cls_ = need("[CLS]");
  sep_ = need("[SEP]");
  check(opts_.max_input_chars_per_word > 0, "max_input_chars_per_word must be positive");
}

BertTokenizer BertTokenizer::from_file(const std::string& vocab_txt, TokenizerOptions opts) {
  return BertTokenizer(Vocab::load(vocab_txt), opts);
}

std::vector<std::string> BertTokenizer::basic_tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (const std::u32string& t : basic_tokens(text, opts_.do_lower_case)) out.push_back(to_utf8(t));
  return out;
}

std::vector<std::string> BertTokenizer::wordpiece(const std::string& word) const {
  const std::u32string chars = decode_utf8(word);
  if (chars.size() > size_t(opts_.max_input_chars_per_word)) return {"[UNK]"};
  std::vector<std::string> pieces;
  size_t start = 0;
  while (start < chars.size()) {
    size_t end = chars.size();
    std::string match;
    for (; end > start; --end) {
      std::string sub = (start > 0 ? "##" : "") + to_utf8(chars, start, end);
      if (vocab_.contains(sub)) {
        match = std::move(sub);
        break;
      }
    }
    if (match.empty()) return {"[UNK]"};
    pieces.push_back(std::move(match));
    start = end;
  }
  return pieces;
}

std::vector<std::string> BertTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (const std::string& w : basic_tokenize(text))
    for (std::string& p : wordpiece(w)) out.push_back(std::move(p));
  return out;
}

std::vector<int32_t> BertTokenizer::to_ids(const std::vector<std::string>& pieces) const {
  std::vector<int32_t> ids;
  ids.reserve(pieces.size());
  for (const std::string& p : pieces) {
    const int32_t i = vocab_.id(p);
    ids.push_back(i >= 0 ? i : unk_);
  }
  return ids;
}

Encoding BertTokenizer::encode(std::string_view text, int max_len, bool pad) const {
  check(max_len >= 2, "encode: max_len {} must be >= 2 (room for [CLS] and [SEP])", max_len);
  std::vector<int32_t> body = to_ids(tokenize(text));
  if (body.size() > size_t(max_len - 2)) body.resize(size_t(max_len - 2));
  Encoding e;
  e.ids.push_back(cls_);
  e.ids.insert(e.ids.end(), body.begin(), body.end());
  e.ids.push_back(sep_);
  e.mask.assign(e.ids.size(), 1);
  if (pad) {
    e.ids.resize(size_t(max_len), pad_);
    e.mask.resize(size_t(max_len), 0);
  }
  return e;
}

BatchEncoding BertTokenizer::encode_batch(const std::vector<std::string>& texts, int max_len, Padding padding) const {
  check(!texts.empty(), "encode_batch: no texts");
  std::vector<Encoding> rows;
  rows.reserve(texts.size());
  size_t len = 0;
  for (const std::string& t : texts) {
    rows.push_back(encode(t, max_len, false));
    len = std::max(len, rows.back().ids.size());
  }
  if (padding == Padding::MaxLength) len = size_t(max_len);
  const int64_t b = int64_t(texts.size()), l = int64_t(len);
  BatchEncoding out{Tensor::zeros({b, l}, DType::i32), Tensor::zeros({b, l}, DType::i32)};
  int32_t* ids = out.ids.data<int32_t>();
  int32_t* mask = out.mask.data<int32_t>();
  for (int64_t r = 0; r < b; ++r) {
    const Encoding& e = rows[size_t(r)];
    for (int64_t j = 0; j < l; ++j) {
      const bool real = size_t(j) < e.ids.size();
      ids[r * l + j] = real ? e.ids[size_t(j)] : pad_;
      mask[r * l + j] = real ? 1 : 0;
    }
  }
  return out;
}

// ---------------- vocab builder ----------------

Vocab build_wordpiece_vocab(const std::vector<std::string>& sentences, size_t target_size, int64_t min_frequency,
                            const TokenizerOptions& opts) {
  check(!sentences.empty(), "build_wordpiece_vocab: empty corpus");
  std::map<std::u32string, int64_t> words;  // ordered: iteration order is deterministic
  std::set<char32_t> chars;
  for (const std::string& s : sentences)
    for (std::u32string& w : basic_tokens(s, opts.do_lower_case)) {
      chars.insert(w.begin(), w.end());
      ++words[std::move(w)];
    }
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (char32_t c : chars) vocab.push_back(to_utf8(std::u32string(1, c)));
  for (char32_t c : chars) vocab.push_back("##" + to_utf8(std::u32string(1, c)));
  if (vocab.size() >= target_size) return Vocab(std::move(vocab));

  // Step 3: whole words by (count desc, word asc).
  std::vector<std::pair<int64_t, std::u32string>> ranked;
  for (const auto& [w, n] : words)
    if (w.size() >= 2 && n >= min_frequency) ranked.emplace_back(-n, w);
  std::sort(ranked.begin(), ranked.end());
  const size_t budget = target_size - vocab.size();
  const size_t n_words = std::min(ranked.size(), budget * 4 / 5);
  std::set<std::u32string> taken;
  for (size_t i = 0; i < n_words; ++i) {
    taken.insert(ranked[i].second);
    vocab.push_back(to_utf8(ranked[i].second));
  }
  // Step 4: suffixes of the words left out, scored by those words' counts.
  std::map<std::u32string, int64_t> suffixes;
  for (const auto& [w, n] : words) {
    if (taken.count(w)) continue;
    for (size_t i = 1; i + 2 <= w.size(); ++i)
      if (w.size() - i <= 10) suffixes[w.substr(i)] += n;
  }
  std::vector<std::pair<int64_t, std::u32string>> ranked_suffixes;
  for (const auto& [s, n] : suffixes)
    if (n >= min_frequency) ranked_suffixes.emplace_back(-n, s);
  std::sort(ranked_suffixes.begin(), ranked_suffixes.end());
  for (size_t i = 0; i < ranked_suffixes.size() && vocab.size() < target_size; ++i)
    vocab.push_back("##" + to_utf8(ranked_suffixes[i].second));
  // Step 5: remaining budget to more words.
  for (size_t i = n_words; i < ranked.size() && vocab.size() < target_size; ++i)
    vocab.push_back(to_utf8(ranked[i].second));
  return Vocab(std::move(vocab));
}

double unk_rate(const BertTokenizer& tok, const std::vector<std::string>& sentences) {
  int64_t total = 0, unk = 0;
  for (const std::string& s : sentences)
    for (const std::string& p : tok.tokenize(s)) {
      ++total;
      unk += (p == "[UNK]");
    }
  return total == 0 ? 0.0 : double(unk) / double(total);
}

}  // namespace mpq::data
