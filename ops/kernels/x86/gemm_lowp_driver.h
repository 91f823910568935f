// Shared AVX-512 driver for the low-precision GEMMs (int8 / int4 / f16 / bf16), included by each
// *__avx512*.cpp kernel file. Anonymous namespace on purpose: every including TU gets its own copy
// compiled with its own ISA flags (ODR-safe multi-ISA build, as ops/kernels/x86/gemm_f32_driver.h).
//
// Loop nest per thread (rows [m0,m1) x weight panels [p0,p1)):
//   for chunk of up to CHUNK tiles (A chunk ~ 384 KiB, stays in L2)
//     pack A rows of the chunk into Ap [tiles][ksteps][MR] (one 4-byte element per k-step and row:
//       int8: 4 activations of a vpdpbusd dword; bf16: a pair; f16/f32: one f32)
//     for panel p (32 columns; packed weights [ksteps][32 x 4 bytes] streamed from L2/memory)
//       for tile t: Kern::tile<h>(Ap_t, panel, ...)   (accumulators in registers over all of K,
//                                                       then the fused epilogue and the store)
// M is split into near-equal tile heights (as the f32 driver); N tails are masked in the epilogue.
// Threads: split the panels when there are at least as many as threads (each thread streams a
// disjoint half of W), else split M.
//
// Kern policy:
//   using Args; using AElem (4 bytes); static constexpr int MR;
//   static int64_t ksteps(const Args&); static int64_t N(const Args&); static double ops(const Args&);
//   static int64_t panel_bytes(const Args&);                           // packed bytes of one weight panel
//   static void pack_a(const Args&, int64_t r0, int rows, AElem* Ap);   // Ap [ksteps][MR]
//   template <int R> static void tile(const Args&, const AElem* Ap, int64_t r0, int64_t panel, int ncols);
#pragma once
// GCC 12 reports the intentionally undefined `__Y` operand inside its own AVX-512 intrinsic headers
// (_mm512_undefined_* in masked conversions) as "maybe uninitialized": false positives, silenced for
// the kernel TUs that include this header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include "core/error.h"
#include "ops/kernels/lowp.h"

namespace mpq::kernels {
namespace {

struct LowpScratch {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> p;
  size_t bytes = 0;
  void* get(size_t n) {
    if (n > bytes) {
      const size_t b = (n + 63) / 64 * 64;
      p.reset(std::aligned_alloc(64, b));
      check(p != nullptr, "lowp gemm: out of memory allocating {} bytes of packing buffer", b);
      bytes = n;
    }
    return p.get();
  }
};

inline __mmask16 lane_mask(int ncols) {  // first min(max(ncols,0),16) lanes
  return ncols >= 16 ? __mmask16(0xffff) : ncols <= 0 ? __mmask16(0) : __mmask16((1u << ncols) - 1u);
}

// The shared epilogue of ops/kernels/lowp.h, 16 lanes at a time, same f32 ops as lowp_epilogue_scalar.
struct Epi {
  const LowpEpilogue& ep;
  __m512 sa, lo, hi, inv_os, zp_f, res_scale;
  __m512i res_zp;
  bool clamp;  // false when both bounds are infinite (max/min would be identities)
  Epi(const LowpEpilogue& e, float s)
      : ep(e),
        sa(_mm512_set1_ps(s)),
        lo(_mm512_set1_ps(e.clamp_lo)),
        hi(_mm512_set1_ps(e.clamp_hi)),
        inv_os(_mm512_set1_ps(1.0f / e.out_scale)),
        zp_f(_mm512_set1_ps(float(e.out_zp))),
        res_scale(_mm512_set1_ps(e.res_scale)),
        res_zp(_mm512_set1_epi32(e.res_zp)),
        clamp(!(e.clamp_lo == -std::numeric_limits<float>::infinity() &&
                e.clamp_hi == std::numeric_limits<float>::infinity())) {}

  // bias[n .. n+15] (0 where masked off or without bias); loaded once per tile, not per row.
  __m512 bias16(int64_t n, __mmask16 mask) const {
    return ep.bias ? _mm512_maskz_loadu_ps(mask, ep.bias + n) : _mm512_setzero_ps();
  }
  // f: pre-scale values of C[m, n .. n+15] (lanes outside `mask` are ignored); b = bias16(n, mask);
  // y = fma(f, sa, b).
  void store16(__m512 f, __m512 b, int64_t m, int64_t n, __mmask16 mask, void* C, int64_t ldc) const {
    store16s(f, sa, b, m, n, mask, C, ldc);
  }
  // Same with a per-column scale vector sc (= sa * s[n] for the per-channel integer paths).
  void store16s(__m512 f, __m512 sc, __m512 b, int64_t m, int64_t n, __mmask16 mask, void* C, int64_t ldc) const {
    if (!mask) return;
    // Plain loads / stores for full 16-lane blocks: masked stores, and above all vpmovdb straight to memory,
    // cost several times a plain store on this CPU (Zen 5; the W4A8 stem conv ran 1.5x faster without them).
    const bool full = mask == __mmask16(0xffff);
    __m512 y = _mm512_fmadd_ps(f, sc, b);
    if (ep.residual) {
      if (ep.residual_u8) {
        const uint8_t* rp = static_cast<const uint8_t*>(ep.residual) + m * ep.ld_res + n;
        const __m128i r8 =
            full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(rp)) : _mm_maskz_loadu_epi8(mask, rp);
        const __m512i r = _mm512_sub_epi32(_mm512_cvtepu8_epi32(r8), res_zp);
        y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(r), res_scale, y);
      } else {
        const float* rp = static_cast<const float*>(ep.residual) + m * ep.ld_res + n;
        y = _mm512_add_ps(y, full ? _mm512_loadu_ps(rp) : _mm512_maskz_loadu_ps(mask, rp));
      }
    }
    if (clamp) {
      y = _mm512_max_ps(y, lo);  // y > lo ? y : lo
      y = _mm512_min_ps(y, hi);  // y < hi ? y : hi
    }
    switch (ep.out) {
      case DType::f32: {
        float* c = static_cast<float*>(C) + m * ldc + n;
        full ? _mm512_storeu_ps(c, y) : _mm512_mask_storeu_ps(c, mask, y);
        break;
      }
      case DType::f16: {
        uint16_t* c = static_cast<uint16_t*>(C) + m * ldc + n;
        const __m256i h = _mm512_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        full ? _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), h) : _mm256_mask_storeu_epi16(c, mask, h);
        break;
      }
      case DType::u8: {
        __m512 t = _mm512_mul_ps(y, inv_os);
        t = _mm512_add_ps(t, zp_f);
        t = _mm512_max_ps(t, _mm512_setzero_ps());
        t = _mm512_min_ps(t, _mm512_set1_ps(255.0f));
        const __m128i q = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(t));  // RNE under the default MXCSR
        uint8_t* c = static_cast<uint8_t*>(C) + m * ldc + n;
        full ? _mm_storeu_si128(reinterpret_cast<__m128i*>(c), q) : _mm_mask_storeu_epi8(c, mask, q);
        break;
      }
      default:  // f32, f16 and u8 only: refused by the argument checks before any store
        break;
    }
  }
};

template <class Kern>
struct LowpDriver {
  using Args = typename Kern::Args;
  using AElem = typename Kern::AElem;
  static constexpr int MR = Kern::MR;
  static constexpr size_t kChunkBytes = 384 * 1024;
  using TileFn = void (*)(const Args&, const AElem*, int64_t, int64_t, int);

  template <size_t... I>
  static constexpr std::array<TileFn, MR + 1> make_table(std::index_sequence<I...>) {
    return {nullptr, &Kern::template tile<int(I) + 1>...};
  }
  static constexpr std::array<TileFn, MR + 1> tile_fns = make_table(std::make_index_sequence<MR>{});

  static void run_block(const Args& g, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
    if (m1 <= m0 || p1 <= p0) return;
    const int64_t rows = m1 - m0, ntiles = (rows + MR - 1) / MR;
    const int64_t base = rows / ntiles, extra = rows % ntiles;
    auto tile_start = [&](int64_t t) { return m0 + t * base + std::min(t, extra); };
    const int64_t ks = Kern::ksteps(g), N = Kern::N(g);
    const int64_t tile_elems = ks * MR;
    const int64_t chunk = std::max<int64_t>(1, int64_t(kChunkBytes / (sizeof(AElem) * size_t(tile_elems))));
    thread_local LowpScratch scratch;
    auto* Ap = static_cast<AElem*>(scratch.get(sizeof(AElem) * size_t(tile_elems * std::min(chunk, ntiles))));
    // Small weights (all panels of this thread fit in L2 next to the A chunk, e.g. the 1x1 convs with
    // K = 24..64): tile-major order, so each C row block is written once, contiguously, while its A tile
    // stays in L1. Otherwise panel-major: a panel (up to K*32 bytes) stays in L1/L2 across the tiles.
    const bool tile_major = Kern::panel_bytes(g) * (p1 - p0) <= 256 * 1024;
    for (int64_t t0 = 0; t0 < ntiles; t0 += chunk) {
      const int64_t tn = std::min(chunk, ntiles - t0);
      for (int64_t t = 0; t < tn; ++t) {
        const int64_t r = tile_start(t0 + t);
        Kern::pack_a(g, r, int(tile_start(t0 + t + 1) - r), Ap + t * tile_elems);
      }
      auto run_tile = [&](int64_t t, int64_t p) {
        const int64_t r = tile_start(t0 + t);
        tile_fns[size_t(tile_start(t0 + t + 1) - r)](g, Ap + t * tile_elems, r, p,
                                                     int(std::min<int64_t>(32, N - p * 32)));
      };
      if (tile_major) {
        for (int64_t t = 0; t < tn; ++t)
          for (int64_t p = p0; p < p1; ++p) run_tile(t, p);
      } else {
        for (int64_t p = p0; p < p1; ++p)
          for (int64_t t = 0; t < tn; ++t) run_tile(t, p);
      }
    }
  }

  static void run(const Args& g) {
    if (g.M == 0) return;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (Kern::ops(g) < 4e6) nt = 1;
    const int64_t npanels = (Kern::N(g) + 31) / 32, ntiles = (g.M + MR - 1) / MR;
    int tn = int(std::min<int64_t>(nt, npanels));
    int tm = std::max(1, int(std::min<int64_t>(nt / tn, ntiles)));
    // Split M instead when there are many row tiles and few panels (panel counts like 5 split unevenly;
    // every thread then reads all of W, which is small in exactly these shapes).
    if ((npanels < nt || (ntiles >= 8 * nt && npanels < 8 * nt)) && ntiles >= nt) tn = 1, tm = nt;
    const int used = tn * tm;
    auto work = [&](int id) {
      const int im = id / tn, in = id % tn;
      run_block(g, g.M * im / tm, g.M * (im + 1) / tm, npanels * in / tn, npanels * (in + 1) / tn);
    };
    if (used == 1) {
      work(0);
      return;
    }
// the team can be smaller than asked (OMP_THREAD_LIMIT, OMP_DYNAMIC, a nested region): every block id
// runs on some thread of it
#pragma omp parallel num_threads(used)
    for (int id = omp_get_thread_num(); id < used; id += omp_get_num_threads()) work(id);
  }
};

// Packs int8 activations for vpdpbusd: Ap[s][MR] (s < ksteps) = bytes 4s..4s+3 of row r0+i as one
// dword, xor 0x80808080 for s8 A (-> u8 = a + 128). K tail bytes and steps beyond K are 0 (times the
// zero weight padding).
template <int MR, class Args>
void pack_a_u8x4(const Args& g, int64_t r0, int rows, int64_t ksteps, int64_t K, int32_t* Ap) {
  const uint32_t flip = g.a_signed ? 0x80808080u : 0u;
  const int64_t full = K / 4, tail = K % 4;
  for (int i = 0; i < rows; ++i) {
    const uint8_t* src = g.A + (r0 + i) * g.lda;
    for (int64_t s = 0; s < full; ++s) {
      uint32_t v;
      std::memcpy(&v, src + 4 * s, 4);
      Ap[s * MR + i] = int32_t(v ^ flip);
    }
    int64_t s = full;
    if (tail) {
      uint32_t v = 0;
      std::memcpy(&v, src + 4 * full, size_t(tail));
      Ap[s * MR + i] = int32_t(v ^ (flip & ((1u << (8 * tail)) - 1u)));
      ++s;
    }
    for (; s < ksteps; ++s) Ap[s * MR + i] = 0;
  }
}

}  // namespace
}  // namespace mpq::kernels
