#include "models/data/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "core/error.h"

namespace mpq::data {
namespace {

struct Range {
  char32_t lo, hi;
};

// ---- Unicode tables (generated with Python's unicodedata 14.0; see tokenizer.h) ----
// Unicode category P* (punctuation) above ASCII, Unicode 14.
constexpr Range kPunct[] = {
    {0xA1, 0xA1}, {0xA7, 0xA7}, {0xAB, 0xAB}, {0xB6, 0xB7}, {0xBB, 0xBB}, {0xBF, 0xBF}, {0x37E, 0x37E},
    {0x387, 0x387}, {0x55A, 0x55F}, {0x589, 0x58A}, {0x5BE, 0x5BE}, {0x5C0, 0x5C0}, {0x5C3, 0x5C3}, {0x5C6, 0x5C6},
    {0x5F3, 0x5F4}, {0x609, 0x60A}, {0x60C, 0x60D}, {0x61B, 0x61B}, {0x61D, 0x61F}, {0x66A, 0x66D}, {0x6D4, 0x6D4},
    {0x700, 0x70D}, {0x7F7, 0x7F9}, {0x830, 0x83E}, {0x85E, 0x85E}, {0x964, 0x965}, {0x970, 0x970}, {0x9FD, 0x9FD},
    {0xA76, 0xA76}, {0xAF0, 0xAF0}, {0xC77, 0xC77}, {0xC84, 0xC84}, {0xDF4, 0xDF4}, {0xE4F, 0xE4F}, {0xE5A, 0xE5B},
    {0xF04, 0xF12}, {0xF14, 0xF14}, {0xF3A, 0xF3D}, {0xF85, 0xF85}, {0xFD0, 0xFD4}, {0xFD9, 0xFDA},
    {0x104A, 0x104F}, {0x10FB, 0x10FB}, {0x1360, 0x1368}, {0x1400, 0x1400}, {0x166E, 0x166E}, {0x169B, 0x169C},
    {0x16EB, 0x16ED}, {0x1735, 0x1736}, {0x17D4, 0x17D6}, {0x17D8, 0x17DA}, {0x1800, 0x180A}, {0x1944, 0x1945},
    {0x1A1E, 0x1A1F}, {0x1AA0, 0x1AA6}, {0x1AA8, 0x1AAD}, {0x1B5A, 0x1B60}, {0x1B7D, 0x1B7E}, {0x1BFC, 0x1BFF},
    {0x1C3B, 0x1C3F}, {0x1C7E, 0x1C7F}, {0x1CC0, 0x1CC7}, {0x1CD3, 0x1CD3}, {0x2010, 0x2027}, {0x2030, 0x2043},
    {0x2045, 0x2051}, {0x2053, 0x205E}, {0x207D, 0x207E}, {0x208D, 0x208E}, {0x2308, 0x230B}, {0x2329, 0x232A},
    {0x2768, 0x2775}, {0x27C5, 0x27C6}, {0x27E6, 0x27EF}, {0x2983, 0x2998}, {0x29D8, 0x29DB}, {0x29FC, 0x29FD},
    {0x2CF9, 0x2CFC}, {0x2CFE, 0x2CFF}, {0x2D70, 0x2D70}, {0x2E00, 0x2E2E}, {0x2E30, 0x2E4F}, {0x2E52, 0x2E5D},
    {0x3001, 0x3003}, {0x3008, 0x3011}, {0x3014, 0x301F}, {0x3030, 0x3030}, {0x303D, 0x303D}, {0x30A0, 0x30A0},
    {0x30FB, 0x30FB}, {0xA4FE, 0xA4FF}, {0xA60D, 0xA60F}, {0xA673, 0xA673}, {0xA67E, 0xA67E}, {0xA6F2, 0xA6F7},
    {0xA874, 0xA877}, {0xA8CE, 0xA8CF}, {0xA8F8, 0xA8FA}, {0xA8FC, 0xA8FC}, {0xA92E, 0xA92F}, {0xA95F, 0xA95F},
    {0xA9C1, 0xA9CD}, {0xA9DE, 0xA9DF}, {0xAA5C, 0xAA5F}, {0xAADE, 0xAADF}, {0xAAF0, 0xAAF1}, {0xABEB, 0xABEB},
    {0xFD3E, 0xFD3F}, {0xFE10, 0xFE19}, {0xFE30, 0xFE52}, {0xFE54, 0xFE61}, {0xFE63, 0xFE63}, {0xFE68, 0xFE68},
    {0xFE6A, 0xFE6B}, {0xFF01, 0xFF03}, {0xFF05, 0xFF0A}, {0xFF0C, 0xFF0F}, {0xFF1A, 0xFF1B}, {0xFF1F, 0xFF20},
    {0xFF3B, 0xFF3D}, {0xFF3F, 0xFF3F}, {0xFF5B, 0xFF5B}, {0xFF5D, 0xFF5D}, {0xFF5F, 0xFF65}, {0x10100, 0x10102},
    {0x1039F, 0x1039F}, {0x103D0, 0x103D0}, {0x1056F, 0x1056F}, {0x10857, 0x10857}, {0x1091F, 0x1091F},
    {0x1093F, 0x1093F}, {0x10A50, 0x10A58}, {0x10A7F, 0x10A7F}, {0x10AF0, 0x10AF6}, {0x10B39, 0x10B3F},
    {0x10B99, 0x10B9C}, {0x10EAD, 0x10EAD}, {0x10F55, 0x10F59}, {0x10F86, 0x10F89}, {0x11047, 0x1104D},
    {0x110BB, 0x110BC}, {0x110BE, 0x110C1}, {0x11140, 0x11143}, {0x11174, 0x11175}, {0x111C5, 0x111C8},
    {0x111CD, 0x111CD}, {0x111DB, 0x111DB}, {0x111DD, 0x111DF}, {0x11238, 0x1123D}, {0x112A9, 0x112A9},
    {0x1144B, 0x1144F}, {0x1145A, 0x1145B}, {0x1145D, 0x1145D}, {0x114C6, 0x114C6}, {0x115C1, 0x115D7},
    {0x11641, 0x11643}, {0x11660, 0x1166C}, {0x116B9, 0x116B9}, {0x1173C, 0x1173E}, {0x1183B, 0x1183B},
    {0x11944, 0x11946}, {0x119E2, 0x119E2}, {0x11A3F, 0x11A46}, {0x11A9A, 0x11A9C}, {0x11A9E, 0x11AA2},
    {0x11C41, 0x11C45}, {0x11C70, 0x11C71}, {0x11EF7, 0x11EF8}, {0x11FFF, 0x11FFF}, {0x12470, 0x12474},
    {0x12FF1, 0x12FF2}, {0x16A6E, 0x16A6F}, {0x16AF5, 0x16AF5}, {0x16B37, 0x16B3B}, {0x16B44, 0x16B44},
    {0x16E97, 0x16E9A}, {0x16FE2, 0x16FE2}, {0x1BC9F, 0x1BC9F}, {0x1DA87, 0x1DA8B}, {0x1E95E, 0x1E95F}
};
// Unicode category Cf (format) characters, Unicode 14; Cc is 0x00-0x1F and 0x7F-0x9F.
constexpr Range kFormat[] = {
    {0xAD, 0xAD}, {0x600, 0x605}, {0x61C, 0x61C}, {0x6DD, 0x6DD}, {0x70F, 0x70F}, {0x890, 0x891}, {0x8E2, 0x8E2},
    {0x180E, 0x180E}, {0x200B, 0x200F}, {0x202A, 0x202E}, {0x2060, 0x2064}, {0x2066, 0x206F}, {0xFEFF, 0xFEFF},
    {0xFFF9, 0xFFFB}, {0x110BD, 0x110BD}, {0x110CD, 0x110CD}, {0x13430, 0x13438}, {0x1BCA0, 0x1BCA3},
    {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F}
};
// Unicode category Zs (space separators) above ASCII, Unicode 14.
constexpr Range kSpace[] = {
    {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}
};
// Base letter of the canonical decomposition of U+00C0.. ('.' = no letter+marks decomposition).
constexpr std::string_view kStripLatin =
    "AAAAAA.CEEEEIIII.NOOOOO..UUUUY..aaaaaa.ceeeeiiii.nooooo..uuuuy.y"  // U+00C0
    "AaAaAaCcCcCcCcDd..EeEeEeEeEeGgGgGgGgHh..IiIiIiIiI...JjKk.LlLlLl."  // U+0100
    "...NnNnNn...OoOoOo..RrRrRrSsSsSsSsTtTt..UuUuUuUuUuUuWwYyYZzZzZz."  // U+0140
    "................................Oo.............Uu..............."  // U+0180
    ".............AaIiOoUuUuUuUuUu.AaAa....GgKkOoOo..j...Gg..NnAa...."  // U+01C0
    "AaAaEeEeIiIiOoOoRrRrUuUuSsTt..Hh......AaEeOoOoOoOoYy............"  // U+0200
    "................"  // U+0240
    ;
// Base letter of the canonical decomposition of U+1E00.. ('.' = no letter+marks decomposition).
constexpr std::string_view kStripLatinAdditional =
    "AaBbBbBbCcDdDdDdDdDdEeEeEeEeEeFfGgHhHhHhHhHhIiIiKkKkKkLlLlLlLlMm"  // U+1E00
    "MmMmNnNnNnNnOoOoOoOoPpPpRrRrRrRrSsSsSsSsSsTtTtTtTtUuUuUuUuUuVvVv"  // U+1E40
    "WwWwWwWwWwXxXxYyZzZzZzhtwy......AaAaAaAaAaAaAaAaAaAaAaAaEeEeEeEe"  // U+1E80
    "EeEeEeEeIiIiOoOoOoOoOoOoOoOoOoOoOoOoUuUuUuUuUuUuUuYyYyYyYy......"  // U+1EC0
    ;

template <size_t N>
bool in_ranges(const Range (&rs)[N], char32_t cp) {
  const auto it = std::upper_bound(std::begin(rs), std::end(rs), cp, [](char32_t c, const Range& r) { return c < r.lo; });
  return it != std::begin(rs) && cp <= std::prev(it)->hi;
}

bool is_whitespace(char32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || (cp >= 0x80 && in_ranges(kSpace, cp));
}
// Python's str.split() also splits on these (Zl, Zp); they survive cleaning because they are not Zs.
bool is_split_space(char32_t cp) { return cp == ' ' || cp == 0x2028 || cp == 0x2029; }

bool is_control(char32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return true;  // Cc
  return cp > 0x9F && in_ranges(kFormat, cp);                // Cf
}

bool is_punctuation(char32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
    return true;
  return cp >= 0x80 && in_ranges(kPunct, cp);
}

// HF's _is_chinese_char blocks (CJK Unified Ideographs + extensions + compatibility ideographs).
bool is_cjk(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

bool is_combining_mark(char32_t cp) {
  return (cp >= 0x300 && cp <= 0x36F) || (cp >= 0x1AB0 && cp <= 0x1AFF) || (cp >= 0x1DC0 && cp <= 0x1DFF) ||
         (cp >= 0x20D0 && cp <= 0x20FF) || (cp >= 0xFE20 && cp <= 0xFE2F);
}

char32_t to_lower(char32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp + 32;
  if (cp < 0xC0) return cp;
  if (cp <= 0xDE) return cp == 0xD7 ? cp : cp + 0x20;           // Latin-1 capitals (not U+00D7 '×')
  if (cp == 0x130) return 'i';                                  // 'İ' -> "i\u0307" -> (stripped) "i"
  if (cp >= 0x100 && cp <= 0x137) return (cp % 2 == 0) ? cp + 1 : cp;
  if (cp >= 0x139 && cp <= 0x148) return (cp % 2 == 1) ? cp + 1 : cp;
  if (cp >= 0x14A && cp <= 0x177) return (cp % 2 == 0) ? cp + 1 : cp;
  if (cp == 0x178) return 0xFF;                                 // 'Ÿ' -> 'ÿ'
  if (cp >= 0x179 && cp <= 0x17E) return (cp % 2 == 1) ? cp + 1 : cp;
  if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 0x20;  // Greek capitals
  if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;                 // Cyrillic А..Я
  if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;                 // Cyrillic Ѐ..Џ
  return cp;
}

// Returns the accent-stripped code point, or 0 when the code point is a combining mark to drop.
char32_t strip_accent(char32_t cp) {
  if (is_combining_mark(cp)) return 0;
  if (cp >= 0xC0 && cp < 0x250 && kStripLatin[cp - 0xC0] != '.') return char32_t(kStripLatin[cp - 0xC0]);
  if (cp >= 0x1E00 && cp < 0x1F00 && kStripLatinAdditional[cp - 0x1E00] != '.')
    return char32_t(kStripLatinAdditional[cp - 0x1E00]);
  return cp;
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
  std::u32string cur;
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
    // A CJK ideograph is surrounded by spaces, i.e. it is a token of its own. It is neither a
    // combining mark nor affected by lower-casing, so handling it before per-word steps is equivalent.
    if (is_cjk(cp)) {
      flush();
      out.push_back(std::u32string(1, cp));
      continue;
    }
    if (lower) {
      cp = strip_accent(to_lower(cp));
      if (cp == 0) continue;
      cp = to_lower(cp);  // the stripped base of an upper-case letter outside to_lower's tables
    }
    if (is_punctuation(cp)) {
      flush();
      out.push_back(std::u32string(1, cp));
      continue;
    }
    cur.push_back(cp);
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
  std::ifstream in(path);
  check(bool(in), "cannot open vocab file '{}'", path);
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
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  check(bool(out), "cannot write vocab file '{}'", path);
  for (const std::string& t : tokens_) out << t << '\n';
  out.flush();
  check(bool(out), "error writing vocab file '{}'", path);
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

BatchEncoding BertTokenizer::encode_batch(const std::vector<std::string>& texts, int max_len,
                                          Padding padding) const {
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
