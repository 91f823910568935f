// Packed-panel GEMM driver (GotoBLAS / BLIS loop structure), shared by the per-ISA translation units.
//
// Everything here is in an anonymous namespace on purpose: each *__avx2.cpp / *__avx512.cpp includes it
// and gets its own copy compiled with its own ISA flags, so the linker can never merge an AVX-512
// instantiation into the AVX2 path (ODR-safe multi-ISA build).
//
// Loop nest per thread (C block [m0,m1) x [n0,n1)):
//   for pc in K step KC                      one K block; C accumulates across blocks
//     for group of <= MC_TILES micro-tiles   pack op(A) rows  Ap [tiles][kc][AS]            (L2)
//       for jc in [n0,n1) step NC            pack op(B) chunk Bp [NC/NR][kc][NR]            (L2)
//                                            + software-prefetch the next chunk's source to L2
//         for panel of NR columns            B micro-panel [kc][NR] reused by every tile ...
//           for tile of the group            ... while the A micro-panels stream from L2
//             microkernel<h>(kc, Ap, Bp, C tile)  (accumulates in registers, one C load/store per kc)
// For M <= MC_TILES * MR (the transformer shapes) A is packed once per K block and B exactly once.
// M is split into ceil(M/MR) tiles of near-equal height (e.g. M=128, MR=14: 2 x 12 + 8 x 13 rows) so
// there is no mostly-empty tail tile; each height has its own fully unrolled microkernel instance.
// N tails are handled by zero-padded B panels and masked C loads/stores inside the microkernel.
//
// Kernel policy K must provide:
//   static constexpr int MR, NR;      tile
//   static constexpr int64_t KC, NC;  cache blocking (see the ISA file for why)
//   static constexpr int MC_TILES;    micro-tiles per packed A block
//   static constexpr int TB;          register-transpose block used by packing (TB divides NR)
//   static constexpr int AS;          A panel stride per k (>= MR; = TB so A packs by transposes)
//   static void transpose_block(const float* src, int64_t ld, float* dst, int64_t dst_ld);
//     dst[k * dst_ld + j] = src[j * ld + k] for j, k < TB
//   template <int R> static void tile(int64_t kc, const float* Ap, const float* Bp, float* C,
//                                     int64_t ldc, int ncols, bool accumulate);
//     Ap: [kc][AS] (rows >= R unused), Bp: [kc][NR] 64-byte aligned, C: R x ncols (ncols <= NR).
#pragma once
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "ops/kernels/f32_impls.h"

namespace mpq::kernels {
namespace {

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
// Per-thread grow-only 64-byte-aligned scratch buffer (packing panels).
struct Scratch {
  std::unique_ptr<float[], AlignedFree> p;
  size_t n = 0;
  float* get(size_t count) {
    if (count > n) {
      const size_t bytes = ((count * sizeof(float) + 63) / 64) * 64;
      p.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
      check(p != nullptr, "gemm: out of memory allocating {} bytes of packing buffer", bytes);
      n = count;
    }
    return p.get();
  }
};

// Software prefetch (to L2) of the next B chunk while the current one is being multiplied: reading B
// from DRAM during packing was ~15% of the M=128,N=3072,K=768 run (hardware prefetchers do not follow
// hundreds of short strided rows). The region is a set of rows; step() issues the next `n` lines.
struct PrefetchRegion {
  const char* base = nullptr;
  int64_t rows = 0, row_bytes = 0, stride = 0;  // stride in bytes between rows
  int64_t next = 0;                             // next cache line index over rows x lines_per_row
  void step(int64_t n) {
    const int64_t lines_per_row = (row_bytes + 63) / 64, total = rows * lines_per_row;
    for (int64_t e = std::min(total, next + n); next < e; ++next) {
      const int64_t r = next / lines_per_row, l = next % lines_per_row;
      _mm_prefetch(base + r * stride + l * 64, _MM_HINT_T1);
    }
  }
  int64_t lines() const { return rows * ((row_bytes + 63) / 64); }
};

// Source region of op(B)[p0:p0+kc, j0:j0+nc].
inline PrefetchRegion b_region(const GemmArgs& g, int64_t p0, int64_t kc, int64_t j0, int64_t nc) {
  PrefetchRegion r;
  const int64_t ld = g.ldb * int64_t(sizeof(float));
  if (!g.trans_b)
    r = {reinterpret_cast<const char*>(g.B + p0 * g.ldb + j0), kc, nc * int64_t(sizeof(float)), ld, 0};
  else
    r = {reinterpret_cast<const char*>(g.B + j0 * g.ldb + p0), nc, kc * int64_t(sizeof(float)), ld, 0};
  return r;
}

template <class K>
struct GemmDriver {
  static constexpr int MR = K::MR, NR = K::NR, AS = K::AS, TB = K::TB;
  static_assert(AS >= MR && AS == TB && NR % TB == 0);
  using TileFn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, bool);

  // tile_fns[r] = microkernel for a tile of r rows (r = 1..MR).
  template <size_t... I>
  static constexpr std::array<TileFn, MR + 1> make_table(std::index_sequence<I...>) {
    return {nullptr, &K::template tile<int(I) + 1>...};
  }
  static constexpr std::array<TileFn, MR + 1> tile_fns = make_table(std::make_index_sequence<MR>{});

  // Pack op(A)[r0:r0+rows, p0:p0+kc] into Ap [kc][AS] (only the first `rows` lanes of each k written).
  static void pack_a(const GemmArgs& g, int64_t r0, int rows, int64_t p0, int64_t kc, float* Ap) {
    if (g.trans_a) {  // A stored [K, lda]: row k holds op(A)(., k) contiguously
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = g.A + (p0 + k) * g.lda + r0;
        float* dst = Ap + k * AS;
        for (int i = 0; i < rows; ++i) dst[i] = src[i];
      }
      return;
    }
    // A stored [M, lda]: transpose rows into the k-major panel. TB x TB register transposes read TB
    // rows (a few past `rows`, landing in unused lanes) when the matrix has them; scalar otherwise.
    int64_t k0 = 0;
    if (r0 + TB <= g.M)
      for (; k0 + TB <= kc; k0 += TB) K::transpose_block(g.A + r0 * g.lda + p0 + k0, g.lda, Ap + k0 * AS, AS);
    for (int i = 0; i < rows; ++i) {
      const float* src = g.A + (r0 + i) * g.lda + p0;
      for (int64_t k = k0; k < kc; ++k) Ap[k * AS + i] = src[k];
    }
  }

  // Pack op(B)[p0:p0+kc, j0:j0+nc] into Bp [ceil(nc/NR)][kc][NR], zero-padding the last panel.
  static void pack_b(const GemmArgs& g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* Bp) {
    const int64_t full = nc / NR, tail = nc % NR;
    if (!g.trans_b) {  // B stored [K, ldb]: k outer so each row of B is read as one contiguous run
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = g.B + (p0 + k) * g.ldb + j0;
        for (int64_t p = 0; p < full; ++p)
          std::memcpy(Bp + (p * kc + k) * NR, src + p * NR, sizeof(float) * NR);  // constant size: vector moves
        if (tail) {
          float* dst = Bp + (full * kc + k) * NR;
          for (int64_t j = 0; j < NR; ++j) dst[j] = j < tail ? src[full * NR + j] : 0.0f;
        }
      }
    } else {  // B stored [N, ldb]: column j of op(B) is row j of B (contiguous in k), scattered by NR
      if (tail) std::memset(Bp + full * kc * NR, 0, sizeof(float) * size_t(kc) * NR);
      // TB x TB register transposes (K::transpose_block) over the full blocks; scalar for the edges.
      const int64_t kfull = kc / TB * TB, jfull = nc / TB * TB;
      for (int64_t k0 = 0; k0 < kfull; k0 += TB)
        for (int64_t j = 0; j < jfull; j += TB)
          K::transpose_block(g.B + (j0 + j) * g.ldb + p0 + k0, g.ldb, Bp + (j / NR) * kc * NR + k0 * NR + (j % NR), NR);
      auto scalar = [&](int64_t ja, int64_t jb, int64_t ka, int64_t kb) {
        for (int64_t j = ja; j < jb; ++j) {
          const float* src = g.B + (j0 + j) * g.ldb + p0;
          float* dst = Bp + (j / NR) * kc * NR + (j % NR);
          for (int64_t k = ka; k < kb; ++k) dst[k * NR] = src[k];
        }
      };
      scalar(0, jfull, kfull, kc);  // k edge
      scalar(jfull, nc, 0, kc);     // j edge
    }
  }

  // One thread's block of C: rows [m0,m1), cols [n0,n1).
  static void run_block(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    if (m1 <= m0 || n1 <= n0) return;
    // Near-equal tile heights: ntiles tiles, the first `extra` of height base+1.
    const int64_t rows = m1 - m0;
    const int64_t ntiles = (rows + MR - 1) / MR;
    const int64_t base = rows / ntiles, extra = rows % ntiles;
    auto tile_start = [&](int64_t t) { return m0 + t * base + std::min(t, extra); };

    thread_local Scratch sa, sb;
    const int64_t kc_max = std::min<int64_t>(K::KC, g.K);
    float* Bp = sb.get(size_t(kc_max) * size_t(K::NC));             // [NC/NR][kc][NR]
    float* Ap = sa.get(size_t(kc_max) * AS * size_t(K::MC_TILES));  // [tiles][kc][AS]

    for (int64_t pc = 0; pc < g.K; pc += K::KC) {
      const int64_t kc = std::min<int64_t>(K::KC, g.K - pc);
      const bool accumulate = pc > 0 || g.beta != 0.0f;
      for (int64_t t0 = 0; t0 < ntiles; t0 += K::MC_TILES) {
        const int64_t tn = std::min<int64_t>(K::MC_TILES, ntiles - t0);
        for (int64_t t = 0; t < tn; ++t) {
          const int64_t r = tile_start(t0 + t);
          pack_a(g, r, int(tile_start(t0 + t + 1) - r), pc, kc, Ap + t * kc * AS);
        }
        for (int64_t jc = n0; jc < n1; jc += K::NC) {
          const int64_t nc = std::min<int64_t>(K::NC, n1 - jc);
          const int64_t npanels = (nc + NR - 1) / NR;
          pack_b(g, pc, kc, jc, nc, Bp);
          // Next chunk to prefetch: the following NC columns, else the first chunk of the next K block.
          PrefetchRegion pf;
          if (jc + K::NC < n1)
            pf = b_region(g, pc, kc, jc + K::NC, std::min<int64_t>(K::NC, n1 - jc - K::NC));
          else if (pc + K::KC < g.K && t0 + K::MC_TILES >= ntiles)
            pf = b_region(g, pc + K::KC, std::min<int64_t>(K::KC, g.K - pc - K::KC), n0,
                          std::min<int64_t>(K::NC, n1 - n0));
          const int64_t pf_per_tile = (pf.lines() + npanels * tn - 1) / (npanels * tn);
          for (int64_t p = 0; p < npanels; ++p) {
            const int cols = int(std::min<int64_t>(NR, nc - p * NR));
            const float* bp = Bp + p * kc * NR;
            for (int64_t t = 0; t < tn; ++t) {
              const int64_t r = tile_start(t0 + t);
              const int h = int(tile_start(t0 + t + 1) - r);
              pf.step(pf_per_tile);
              tile_fns[h](kc, Ap + t * kc * AS, bp, g.C + r * g.ldc + jc + p * NR, g.ldc, cols, accumulate);
            }
          }
        }
      }
    }
  }

  static void run(const GemmArgs& g) {
    check_gemm_args(g);
    if (g.M == 0 || g.N == 0) return;
    if (g.K == 0) {  // C = beta * C
      if (g.beta == 0.0f)
        for (int64_t i = 0; i < g.M; ++i) std::fill(g.C + i * g.ldc, g.C + i * g.ldc + g.N, 0.0f);
      return;
    }
    // Threads: below ~2 MFLOP the fork/join and duplicated packing cost more than they save.
    const double flops = 2.0 * double(g.M) * double(g.N) * double(g.K);
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (flops < 2e6) nt = 1;
    // Split N across threads in NR-aligned chunks when there are enough panels (each thread then packs
    // a disjoint part of B), otherwise split M. tn x tm <= nt.
    const int64_t npanels = (g.N + NR - 1) / NR;
    const int64_t ntiles = (g.M + MR - 1) / MR;
    int tn = int(std::min<int64_t>(nt, npanels));
    int tm = std::max(1, int(std::min<int64_t>(nt / tn, ntiles)));
    if (npanels < nt && ntiles >= nt) tn = 1, tm = nt;
    const int used = tn * tm;
    auto work = [&](int id) {
      const int im = id / tn, in = id % tn;
      const int64_t pn0 = npanels * in / tn, pn1 = npanels * (in + 1) / tn;
      const int64_t m0 = g.M * im / tm, m1 = g.M * (im + 1) / tm;
      run_block(g, m0, m1, pn0 * NR, std::min<int64_t>(g.N, pn1 * NR));
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

}  // namespace
}  // namespace mpq::kernels
