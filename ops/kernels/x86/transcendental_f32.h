// The polynomial constants of the SIMD exp and erf in the transformer row kernels
// (ops/kernels/x86/transformer_f32_xsimd.h, instantiated once per ISA, so every ISA evaluates the same
// polynomials); the reference twins use std::exp / std::erf. Horner order: highest degree first.
#pragma once

namespace mpq::kernels::poly {

// exp(x) = 2^n e^r with n = round(x log2(e)), r = x - n ln2 (|r| <= ln2 / 2).
inline constexpr float kExpMin = -104.0f;  // e^-104 is below the smallest f32 subnormal: the result is 0
inline constexpr float kExpMax = 88.7f;    // e^88.7 is just below FLT_MAX
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;     // ln2 rounded to 9 bits, so n * kLn2Hi is exact
inline constexpr float kLn2Lo = -2.12194440e-4f;  // ln2 - kLn2Hi
// e^r by its Taylor series to degree 7: 1/7!, 1/6!, ..., 1/1!, 1 (truncation 5e-9 relative on |r| <= ln2/2)
inline constexpr float kExpTaylor[8] = {1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f,
                                        1.0f / 6.0f,    0.5f,          1.0f,          1.0f};

// erf(x) ~ x P(x^2) / Q(x^2) on x clamped to [-kErfClamp, kErfClamp]: the rational approximation of
// XLA / Eigen (odd degree-13 numerator, even degree-8 denominator); erf(3.8) is within one f32 ulp of 1.
inline constexpr float kErfClamp = 3.8f;
inline constexpr float kErfP[7] = {-2.72614225801306e-10f, 2.77068142495902e-08f,  -2.10102402082508e-06f,
                                   -5.69250639462346e-05f, -7.34990630326855e-04f, -2.95459980854025e-03f,
                                   -1.60960333262415e-02f};
inline constexpr float kErfQ[5] = {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f,
                                   -7.37332916720468e-03f, -1.42647390514189e-02f};

}  // namespace mpq::kernels::poly
