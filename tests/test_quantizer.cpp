// Weight quantizers against hand-computed values.
#include <doctest/doctest.h>

#include "core/error.h"
#include "quant/quantizer.h"

using namespace mpq;

TEST_CASE("quantizer: symmetric per-channel int8 and int4, round half to even, exact values") {
  // channel 0: max 127 -> int8 scale exactly 1; channel 1: max 7 -> int4 scale exactly 1
  Tensor w = Tensor::from_vector({2, 4}, {127.0f, -0.5f, 1.5f, 2.5f, 7.0f, -2.5f, 0.5f, 3.49f});
  Tensor q8 = quant::fake_quant_weight(w, {8, 0});
  CHECK(q8.at({0, 0}) == 127.0f);
  CHECK(q8.at({0, 1}) == 0.0f);  // -0.5 ties to even 0
  CHECK(q8.at({0, 2}) == 2.0f);  // 1.5 -> 2
  CHECK(q8.at({0, 3}) == 2.0f);  // 2.5 -> 2
  Tensor q4 = quant::fake_quant_weight(w, {4, 0});
  CHECK(q4.at({1, 0}) == 7.0f);
  CHECK(q4.at({1, 1}) == -2.0f);  // -2.5 ties to even -2
  CHECK(q4.at({1, 2}) == 0.0f);   // 0.5 ties to even 0
  CHECK(q4.at({1, 3}) == 3.0f);
  CHECK(quant::quant_error_sq(w, q4) > quant::quant_error_sq(w, q8));
  // per group of 2: the second group of channel 0 (1.5, 2.5) has its own scale 2.5 / 7
  Tensor g4 = quant::fake_quant_weight(w, {4, 2});
  CHECK(g4.at({0, 3}) == doctest::Approx(2.5f));
  CHECK(g4.at({0, 2}) == doctest::Approx(4.0f * 2.5f / 7.0f));  // 1.5 / (2.5/7) = 4.2 -> 4
  CHECK_THROWS_WITH_AS(quant::fake_quant_weight(w, {4, 3}), doctest::Contains("group size 3"), Error);
  // f16 rounding: 1 + 2^-11 is a tie between 1 and 1 + 2^-10 -> even (1)
  CHECK(quant::fake_quant_f16(Tensor::from_vector({1}, {1.0f + 1.0f / 2048})).item() == 1.0f);
}
