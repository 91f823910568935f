// Attention operand packing (ops/kernels/pack_attn.h): every implementation of the six lists that this CPU
// can run, called directly, against the reference twin BIT FOR BIT: the whole packed buffer, padding
// included (both start from the same sentinel fill, so a write outside the N x K elements shows), and for
// int8 the column sums [Np]. Sweep: N, K in {1, 3, 4, 7, 8, 9, 31, 32, 33, 64, 65, 130} (tails of 4 / 8 /
// 32), ldb == the source row length and ldb > it (the skipped elements hold poison), plus deep operands
// (K up to 1030: the u16 column-sum flush of the AVX2 int8 cols pack every 256 rows). Sources: every u8
// byte value, all-0 / all-255 (extreme column sums); floats with NaNs (quiet, signalling, payloads, either
// sign), +-inf, -0, f32 subnormals and extremes, values at the f16 overflow boundary (65504, 65520 and their
// neighbours), f16 ties (normal and subnormal) and bf16 ties (round to even both ways, carry into inf).
// Each implementation packs another source into its buffer first, so stale state from a previous pack
// would show. The reference itself is checked against the library weight packers of lowp.h (pack_q8w,
// pack_f16w_from_f32, pack_bf16w_from_f32), which build the same layouts by their own loops. The ISA cap
// (ScopedIsaCap, what MPQ_ISA sets) makes every list select its reference.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "ops/kernels/pack_attn.h"
#include "tests/kernel_test_util.h"

using namespace mpq;
using namespace mpq::kernels;

namespace {

const int64_t kDims[] = {1, 3, 4, 7, 8, 9, 31, 32, 33, 64, 65, 130};
// Deep operands (N, K): K past one and several 256-row flushes, N with and without a partial panel.
const int64_t kDeep[][2] = {{32, 256}, {33, 257}, {8, 520}, {64, 1030}, {40, 600}};
constexpr uint8_t kFill = 0xa5;           // packed bytes before a pack (never a value the sweep expects)
constexpr int32_t kSumFill = 0x5a5a5a5a;  // int8 column sums before a pack

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// ---- the three operand kinds: source type, packed struct, list, element offsets ----

struct Q8 {
  using Src = uint8_t;
  using PW = PackedQ8W;
  static constexpr const char* kName = "qu8";
  static PW make(int64_t N, int64_t K, uint8_t fill, int32_t sum_fill) {
    PW w;
    w.N = N, w.K = K, w.Np = round_up(N, 32), w.Kp = round_up(K, 4);
    w.w.alloc(size_t(w.Np * w.Kp));  // int8 [Np/32][Kp/4][32][4]
    std::memset(w.w.data(), fill, w.w.bytes);
    w.scale.assign(size_t(w.Np), 1.0f);
    w.colsum.assign(size_t(w.Np), sum_fill);  // [Np]
    return w;
  }
  static const PackAttnQ8List& list(bool cols) { return cols ? pack_attn_qu8_cols_list() : pack_attn_qu8_rows_list(); }
  static void entry(bool cols, const PackAttnQ8Args& a) { cols ? pack_attn_qu8_cols(a) : pack_attn_qu8_rows(a); }
  // Byte offsets of element (n, k) in the packed buffer.
  static std::vector<int64_t> bytes_of(const PW& w, int64_t n, int64_t k) {
    return {((n / 32) * (w.Kp / 4) + k / 4) * 128 + (n % 32) * 4 + k % 4};
  }
  static bool sums_equal(const PW& a, const PW& b) { return a.colsum == b.colsum; }
  static bool sum_padding_untouched(const PW& w) {
    for (int64_t n = w.N; n < w.Np; ++n)
      if (w.colsum[size_t(n)] != kSumFill) return false;
    return true;
  }
};

struct F16 {
  using Src = float;
  using PW = PackedF16W;
  static constexpr const char* kName = "f16";
  static PW make(int64_t N, int64_t K, uint8_t fill, int32_t) {
    PW w;
    w.N = N, w.K = K, w.Np = round_up(N, 32);
    w.w.alloc(size_t(w.Np * K) * 2);  // f16 [Np/32][K][32]
    std::memset(w.w.data(), fill, w.w.bytes);
    return w;
  }
  static const PackAttnF16List& list(bool cols) {
    return cols ? pack_attn_f32_f16_cols_list() : pack_attn_f32_f16_rows_list();
  }
  static void entry(bool cols, const PackAttnF16Args& a) {
    cols ? pack_attn_f32_f16_cols(a) : pack_attn_f32_f16_rows(a);
  }
  static std::vector<int64_t> bytes_of(const PW& w, int64_t n, int64_t k) {
    const int64_t e = ((n / 32) * w.K + k) * 32 + n % 32;
    return {2 * e, 2 * e + 1};
  }
  static bool sums_equal(const PW&, const PW&) { return true; }
  static bool sum_padding_untouched(const PW&) { return true; }
};

struct BF16 {
  using Src = float;
  using PW = PackedBF16W;
  static constexpr const char* kName = "bf16";
  static PW make(int64_t N, int64_t K, uint8_t fill, int32_t) {
    PW w;
    w.N = N, w.K = K, w.Np = round_up(N, 32), w.Kp = round_up(K, 2);
    w.w.alloc(size_t(w.Np * w.Kp) * 2);  // bf16 [Np/32][Kp/2][32][2]
    std::memset(w.w.data(), fill, w.w.bytes);
    return w;
  }
  static const PackAttnBF16List& list(bool cols) {
    return cols ? pack_attn_f32_bf16_cols_list() : pack_attn_f32_bf16_rows_list();
  }
  static void entry(bool cols, const PackAttnBF16Args& a) {
    cols ? pack_attn_f32_bf16_cols(a) : pack_attn_f32_bf16_rows(a);
  }
  static std::vector<int64_t> bytes_of(const PW& w, int64_t n, int64_t k) {
    const int64_t e = ((n / 32) * (w.Kp / 2) + k / 2) * 64 + (n % 32) * 2 + k % 2;
    return {2 * e, 2 * e + 1};
  }
  static bool sums_equal(const PW&, const PW&) { return true; }
  static bool sum_padding_untouched(const PW&) { return true; }
};

// ---- sources ----

// The float values that round specially, placed among ordinary ones.
std::vector<float> float_specials() {
  const auto b = [](uint32_t u) { return f32_from_bits(u); };
  return {
      b(0x7fc00000u), b(0xffc00000u),  // quiet NaN, negative quiet NaN
      b(0x7f800001u), b(0x7fa00000u),  // signalling NaNs (payload below / inside f16's 10 bits)
      b(0xffc12345u), b(0x7fbfffffu),  // NaNs with payload in every bit
      INFINITY,       -INFINITY,       // +-inf
      -0.0f,          0.0f,            // signed zeros
      65504.0f,       -65504.0f,       // largest f16
      65519.996f,     65520.0f,        // just below the f16 overflow midpoint (-> 65504), at it (-> inf)
      -65520.0f,      65536.0f,        // -> -inf, beyond f16
      1.00048828125f, 1.00146484375f,  // f16 ties 1 + 2^-11 (-> 1, even), 1 + 3 * 2^-11 (-> up, even)
      2.98023224e-8f, 8.94069672e-8f,  // f16 subnormal ties 2^-25 (-> 0), 3 * 2^-25 (-> 2^-23)
      6.1035156e-05f, 6.0975552e-05f,  // smallest normal f16, largest subnormal f16
      b(0x3f808000u), b(0x3f818000u),  // bf16 ties: lsb 0 (-> down), lsb 1 (-> up)
      b(0xbf818000u), b(0x3f808001u),  // negative tie up, just above a tie
      b(0x7f7f8000u), b(0x7f7fffffu),  // tie with carry into inf, FLT_MAX (-> inf in bf16)
      b(0x00008000u), b(0x80000001u),  // f32 subnormals (bf16 tie at the bottom, smallest negative)
      FLT_MIN,        -FLT_MAX,
      b(0x477fe000u), b(0x477fefffu),  // 65504 by its bits, the largest f32 below 65520 (-> 65504)
  };
}

// Source [rows, ldb] sized (rows - 1) * ldb + len exactly, so a read past the last element is out of
// bounds; elements [len, ldb) of each row are poison (a pack that reads them writes different bytes).
template <class Src>
std::vector<Src> make_source(int64_t rows, int64_t len, int64_t ldb, std::mt19937& rng, int mode) {
  std::vector<Src> B(size_t((rows - 1) * ldb + len));
  const uint32_t salt = rng();
  const std::vector<float> sp = float_specials();
  std::uniform_real_distribution<float> uni(-8.0f, 8.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < ldb && r * ldb + c < int64_t(B.size()); ++c) {
      Src& x = B[size_t(r * ldb + c)];
      const uint32_t i = uint32_t(r * len + c) + salt;
      if constexpr (std::is_same_v<Src, uint8_t>) {
        if (c >= len)
          x = uint8_t(0x5c);
        else if (mode == 1)
          x = 0;
        else if (mode == 2)
          x = 255;
        else
          x = uint8_t(i * 167u);  // consecutive elements run through all 256 byte values
      } else {
        if (c >= len)
          x = f32_from_bits(0x7fc0dead);
        else if (i % 3 == 0)
          x = sp[(i / 3) % sp.size()];
        else if (i % 3 == 1)
          x = f32_from_bits(uint32_t(rng()));  // any bits: NaN, inf, subnormal, huge
        else
          x = uni(rng);
      }
    }
  return B;
}

std::string what(const char* kind, bool cols, int64_t N, int64_t K, int64_t ldb, const char* impl) {
  return fmt::format("{} {} N={} K={} ldb={} {}", kind, cols ? "cols" : "rows", N, K, ldb, impl);
}

// Bytes of the packed buffer outside the N x K elements still hold the sentinel.
template <class T>
bool padding_untouched(const typename T::PW& w) {
  std::vector<bool> used(w.w.bytes, false);
  for (int64_t n = 0; n < w.N; ++n)
    for (int64_t k = 0; k < w.K; ++k)
      for (int64_t o : T::bytes_of(w, n, k)) used[size_t(o)] = true;
  for (size_t o = 0; o < w.w.bytes; ++o)
    if (!used[o] && w.w.data()[o] != kFill) return false;
  return T::sum_padding_untouched(w);
}

// One shape: the reference on a fresh sentinel buffer, then every fast implementation (after packing another
// source into its own buffer) must produce the same bytes and sums. Returns the number of comparisons.
template <class T>
int compare_shape(bool cols, int64_t N, int64_t K, int64_t ldb, std::mt19937& rng, int mode) {
  using Src = typename T::Src;
  const int64_t rows = cols ? K : N, len = cols ? N : K;
  const std::vector<Src> B = make_source<Src>(rows, len, ldb, rng, mode);
  const std::vector<Src> other = make_source<Src>(rows, len, ldb, rng, 0);
  const auto& list = T::list(cols);
  typename T::PW ref = T::make(N, K, kFill, kSumFill);
  list.impls().back().fn({B.data(), ldb, &ref});
  const std::string ctx = what(T::kName, cols, N, K, ldb, list.impls().back().name);
  CHECK_MESSAGE(padding_untouched<T>(ref), ctx);
  int compared = 0;
  testing::for_each_fast_impl(list, [&](const auto& impl) {
    typename T::PW got = T::make(N, K, kFill, kSumFill);
    impl.fn({other.data(), ldb, &got});
    impl.fn({B.data(), ldb, &got});
    const std::string c = what(T::kName, cols, N, K, ldb, impl.name);
    REQUIRE_MESSAGE(got.w.bytes == ref.w.bytes, c);
    CHECK_MESSAGE(std::memcmp(got.w.data(), ref.w.data(), ref.w.bytes) == 0, c);
    CHECK_MESSAGE(T::sums_equal(got, ref), c);
    ++compared;
  });
  return compared;
}

template <class T>
void sweep() {
  std::mt19937 rng(20261206);
  int compared = 0;
  for (bool cols : {false, true}) {
    for (int64_t N : kDims)
      for (int64_t K : kDims)
        for (int64_t extra : {0, 3, 40}) {
          const int64_t len = cols ? N : K;
          compared += compare_shape<T>(cols, N, K, len + extra, rng, 0);
        }
    for (const auto& nk : kDeep)
      for (int mode : {0, 1, 2})  // every byte value, all 0, all 255 (u8); float mixes ignore the mode
        compared += compare_shape<T>(cols, nk[0], nk[1], (cols ? nk[0] : nk[1]) + 5, rng, mode);
  }
  MESSAGE(fmt::format("{}: {} implementation x shape comparisons", T::kName, compared));
  if (isa_detected(Isa::avx2)) CHECK(compared > 0);
}

}  // namespace

TEST_CASE("pack_attn: int8 (qu8) rows / cols, every implementation equals the reference bit for bit") { sweep<Q8>(); }

TEST_CASE("pack_attn: f16 rows / cols, every implementation equals the reference bit for bit") { sweep<F16>(); }

TEST_CASE("pack_attn: bf16 rows / cols, every implementation equals the reference bit for bit") { sweep<BF16>(); }

TEST_CASE("pack_attn: the reference builds the library packers' layouts (pack_q8w, pack_f16w/bf16w_from_f32)") {
  std::mt19937 rng(7);
  for (bool cols : {false, true})
    for (int64_t N : kDims)
      for (int64_t K : kDims) {
        const int64_t len = cols ? N : K, rows = cols ? K : N, ldb = len + 2;
        const std::vector<uint8_t> B = make_source<uint8_t>(rows, len, ldb, rng, 0);
        const std::vector<float> Bf = make_source<float>(rows, len, ldb, rng, 0);
        std::vector<int8_t> w8(size_t(N * K));  // W [N, K]
        std::vector<float> wf(size_t(N * K));   // W [N, K]
        for (int64_t n = 0; n < N; ++n)
          for (int64_t k = 0; k < K; ++k) {
            const size_t s = size_t(cols ? k * ldb + n : n * ldb + k);
            w8[size_t(n * K + k)] = int8_t(int(B[s]) - 128);
            wf[size_t(n * K + k)] = Bf[s];
          }
        const std::vector<float> ones(size_t(N), 1.0f);
        const PackedQ8W lib8 = pack_q8w(w8.data(), N, K, ones.data());
        const PackedF16W lib16 = pack_f16w_from_f32(wf.data(), N, K);
        const PackedBF16W libbf = pack_bf16w_from_f32(wf.data(), N, K);
        PackedQ8W q8 = Q8::make(N, K, 0, 0);  // zeroed as allocated: padding must stay 0
        PackedF16W f16 = F16::make(N, K, 0, 0);
        PackedBF16W bf = BF16::make(N, K, 0, 0);
        Q8::list(cols).impls().back().fn({B.data(), ldb, &q8});
        F16::list(cols).impls().back().fn({Bf.data(), ldb, &f16});
        BF16::list(cols).impls().back().fn({Bf.data(), ldb, &bf});
        const std::string c = what("all", cols, N, K, ldb, "ref");
        REQUIRE(q8.w.bytes == lib8.w.bytes);
        REQUIRE(f16.w.bytes == lib16.w.bytes);
        REQUIRE(bf.w.bytes == libbf.w.bytes);
        CHECK_MESSAGE(std::memcmp(q8.w.data(), lib8.w.data(), lib8.w.bytes) == 0, c);
        CHECK_MESSAGE(q8.colsum == lib8.colsum, c);
        CHECK_MESSAGE(std::memcmp(f16.w.data(), lib16.w.data(), lib16.w.bytes) == 0, c);
        CHECK_MESSAGE(std::memcmp(bf.w.data(), libbf.w.data(), libbf.w.bytes) == 0, c);
      }
}

namespace {
// Under the cap `cap` every list selects the implementation named `suffix` (after the op name); the entry
// point then equals the reference.
template <class T>
void check_dispatch(bool cols, Isa cap, const std::string& suffix) {
  const int64_t N = 33, K = 65, len = cols ? N : K, ldb = len + 1;
  std::mt19937 rng(3);
  const auto B = make_source<typename T::Src>(cols ? K : N, len, ldb, rng, 0);
  const auto& list = T::list(cols);
  typename T::PW ref = T::make(N, K, kFill, kSumFill), got = T::make(N, K, kFill, kSumFill);
  list.impls().back().fn({B.data(), ldb, &ref});
  ScopedIsaCap scoped(cap);
  const auto& impl = list.select({B.data(), ldb, &got});
  CHECK(std::string(impl.name) == std::string(list.op()) + suffix);
  T::entry(cols, {B.data(), ldb, &got});
  CHECK(std::memcmp(got.w.data(), ref.w.data(), ref.w.bytes) == 0);
  CHECK(T::sums_equal(got, ref));
}

template <class T>
void check_list_shape(bool cols) {
  const auto& list = T::list(cols);
  REQUIRE(!list.impls().empty());
  const auto& last = list.impls().back();
  CHECK(last.isa == Isa::ref);
  CHECK((last.supports == nullptr));
  CHECK(std::string(last.name) == std::string(list.op()) + "_ref");
  for (const auto& impl : list.impls()) CHECK(std::string(impl.name).rfind(list.op(), 0) == 0);
}
}  // namespace

TEST_CASE("pack_attn: the ISA cap selects the reference, uncapped AVX2 machines select __avx2") {
  for (bool cols : {false, true}) {
    check_list_shape<Q8>(cols);
    check_list_shape<F16>(cols);
    check_list_shape<BF16>(cols);
    check_dispatch<Q8>(cols, Isa::ref, "_ref");
    check_dispatch<F16>(cols, Isa::ref, "_ref");
    check_dispatch<BF16>(cols, Isa::ref, "_ref");
    if (isa_detected(Isa::avx2)) {
      for (Isa cap : {Isa::avx2, Isa::avx512}) {
        check_dispatch<Q8>(cols, cap, "__avx2");
        check_dispatch<F16>(cols, cap, "__avx2");
        check_dispatch<BF16>(cols, cap, "__avx2");
      }
    }
  }
}

TEST_CASE("pack_attn: bad arguments are named") {
  std::vector<uint8_t> b(64 * 64);
  std::vector<float> f(64 * 64);
  PackedQ8W q8 = Q8::make(33, 9, 0, 0);
  CHECK_THROWS_WITH(pack_attn_qu8_rows({b.data(), 8, &q8}), doctest::Contains("pack_attn_qu8_rows: ldb=8 < K=9"));
  CHECK_THROWS_WITH(pack_attn_qu8_cols({b.data(), 32, &q8}), doctest::Contains("pack_attn_qu8_cols: ldb=32 < N=33"));
  CHECK_THROWS_WITH(pack_attn_qu8_rows({nullptr, 9, &q8}), doctest::Contains("source B is null"));
  CHECK_THROWS_WITH(pack_attn_qu8_rows({b.data(), 9, nullptr}), doctest::Contains("packed operand w is null"));
  q8.colsum.resize(40);
  CHECK_THROWS_WITH(pack_attn_qu8_rows({b.data(), 9, &q8}), doctest::Contains("colsum holds 40 entries, Np=64"));
  q8.Kp = 9;
  CHECK_THROWS_WITH(pack_attn_qu8_rows({b.data(), 9, &q8}), doctest::Contains("Kp=9 is not K=9 rounded up to 4"));
  PackedF16W f16 = F16::make(5, 7, 0, 0);
  f16.Np = 5;
  CHECK_THROWS_WITH(pack_attn_f32_f16_cols({f.data(), 5, &f16}), doctest::Contains("Np=5 is not N=5 rounded up to 32"));
  PackedF16W f16_small = F16::make(5, 7, 0, 0);
  f16_small.K = 8;  // the buffer holds [1][7][32]
  CHECK_THROWS_WITH(pack_attn_f32_f16_rows({f.data(), 8, &f16_small}), doctest::Contains("packed buffer holds 448"));
  PackedBF16W bf = BF16::make(5, 7, 0, 0);
  bf.K = 0;
  CHECK_THROWS_WITH(pack_attn_f32_bf16_rows({f.data(), 8, &bf}), doctest::Contains("need N > 0 and K > 0"));
  PackedBF16W unalloc;
  unalloc.N = 1, unalloc.K = 1, unalloc.Np = 32, unalloc.Kp = 2;
  CHECK_THROWS_WITH(pack_attn_f32_bf16_cols({f.data(), 1, &unalloc}), doctest::Contains("not allocated"));
}
