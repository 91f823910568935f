// CPU feature detection (cpuid + xgetbv, cached once) and the ISA cap used by kernel dispatch.
//
// The cap lets tests and users force slower paths on a fast machine: MPQ_ISA=ref|avx2|avx512 in the
// environment (read once, at first use) or set_isa_cap() at run time. A kernel tagged with an Isa runs
// only if the hardware has it AND its level is <= the cap.
#pragma once
#include <array>

#include "core/enum_table.h"

namespace mpq {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_vnni = false, avx_vnni = false, avx512_bf16 = false;
};

// Detected features (OS support for the YMM/ZMM state is checked via xgetbv). Cached; thread-safe.
const CpuFeatures& cpu_features();

// ISA requirement of a kernel. Ordered by "level" for the cap: ref < avx2-family < avx512-family.
enum class Isa : int {
  ref = 0,      // plain C++ (still compiled with the AVX2 baseline flags, but no intrinsics)
  avx2,         // AVX2 + FMA + F16C
  avx_vnni,     // AVX2 + AVX-VNNI (level of avx2)
  avx512,       // AVX-512 F/BW/DQ/VL
  avx512_vnni,  // + VNNI (level of avx512)
  avx512_bf16,  // + VNNI + BF16 (level of avx512)
};
inline constexpr std::array<EnumName<Isa>, 6> kIsaNames{{{Isa::ref, "ref"},
                                                         {Isa::avx2, "avx2"},
                                                         {Isa::avx_vnni, "avx_vnni"},
                                                         {Isa::avx512, "avx512"},
                                                         {Isa::avx512_vnni, "avx512_vnni"},
                                                         {Isa::avx512_bf16, "avx512_bf16"}}};
// The values MPQ_ISA accepts: one per cap level.
inline constexpr std::array<EnumName<Isa>, 3> kIsaCapNames{
    {{Isa::ref, "ref"}, {Isa::avx2, "avx2"}, {Isa::avx512, "avx512"}}};
inline const char* isa_name(Isa isa) { return enum_name(kIsaNames, isa); }

// Hardware has every feature `isa` needs (ignores the cap).
bool isa_detected(Isa isa);
// Hardware has it and the cap allows it: this is what dispatch asks.
bool isa_enabled(Isa isa);

// Current cap (one of Isa::ref, Isa::avx2, Isa::avx512). Default: MPQ_ISA env var, else avx512.
Isa isa_cap();
// Override the cap (tests); accepts any Isa, only its level matters. Thread-safe (atomic).
void set_isa_cap(Isa cap);
// Parses "ref" | "avx2" | "avx512" (throws mpq::Error otherwise).
Isa parse_isa(const char* s);

// RAII cap for a scope (tests): restores the previous cap on destruction.
class ScopedIsaCap {
 public:
  explicit ScopedIsaCap(Isa cap) : prev_(isa_cap()) { set_isa_cap(cap); }
  ~ScopedIsaCap() { set_isa_cap(prev_); }
  ScopedIsaCap(const ScopedIsaCap&) = delete;
  ScopedIsaCap& operator=(const ScopedIsaCap&) = delete;

 private:
  Isa prev_;
};

}  // namespace mpq
