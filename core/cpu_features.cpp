#include "core/cpu_features.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace mpq {
namespace {

struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};
Regs cpuid(unsigned leaf, unsigned sub) {
  Regs r;
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
  return r;
}
unsigned long long xgetbv0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}
bool bit(unsigned v, int i) { return (v >> i) & 1u; }

CpuFeatures detect() {
  CpuFeatures f;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  const Regs l1 = cpuid(1, 0);
  const bool osxsave = bit(l1.c, 27);
  if (!osxsave) return f;
  const unsigned long long xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;    // XMM + YMM state enabled by the OS
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  const Regs l7 = cpuid(7, 0);
  const Regs l7s1 = cpuid(7, 1);
  if (ymm_os) {
    f.fma = bit(l1.c, 12);
    f.f16c = bit(l1.c, 29);
    f.avx2 = bit(l1.c, 28) && bit(l7.b, 5);
    f.avx_vnni = bit(l7s1.a, 4);
  }
  if (zmm_os) {
    f.avx512f = bit(l7.b, 16);
    f.avx512dq = bit(l7.b, 17);
    f.avx512bw = bit(l7.b, 30);
    f.avx512vl = bit(l7.b, 31);
    f.avx512_vnni = bit(l7.c, 11);
    f.avx512_bf16 = bit(l7s1.a, 5);
  }
  return f;
}

int level(Isa isa) {
  switch (isa) {
    case Isa::ref:
      return 0;
    case Isa::avx2:
    case Isa::avx_vnni:
      return 1;
    case Isa::avx512:
    case Isa::avx512_vnni:
    case Isa::avx512_bf16:
      return 2;
  }
  return 3;
}

Isa initial_cap() {
  const char* env = std::getenv("MPQ_ISA");
  return (env && *env) ? parse_isa(env) : Isa::avx512;
}
std::atomic<int>& cap_storage() {
  static std::atomic<int> cap{static_cast<int>(initial_cap())};
  return cap;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();  // C++11 magic static: detected once, thread-safe
  return f;
}

bool isa_detected(Isa isa) {
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl;
  switch (isa) {
    case Isa::ref:
      return true;
    case Isa::avx2:
      return avx2;
    case Isa::avx_vnni:
      return avx2 && f.avx_vnni;
    case Isa::avx512:
      return avx512;
    case Isa::avx512_vnni:
      return avx512 && f.avx512_vnni;
    case Isa::avx512_bf16:
      return avx512 && f.avx512_vnni && f.avx512_bf16;
  }
  return false;
}

bool isa_enabled(Isa isa) { return isa_detected(isa) && level(isa) <= level(isa_cap()); }

Isa isa_cap() { return static_cast<Isa>(cap_storage().load(std::memory_order_relaxed)); }

void set_isa_cap(Isa cap) { cap_storage().store(static_cast<int>(cap), std::memory_order_relaxed); }

Isa parse_isa(const char* s) {
  check(s != nullptr, "parse_isa: null string");
  return parse_enum(kIsaCapNames, s, "MPQ_ISA value");
}

}  // namespace mpq
