// The activation format planner both native engines use (models/native/format_plan.h), on hand-built value
// graphs: agreement, disagreement, a producer that cannot write the agreed format, residual readers and f16,
// reads that follow a later value's format (max pool), and the copies BERT keeps of X (deduplicated, per-read
// buffer indices, which reads convert), the latter also against the hand-written slot loop it replaced.
#include <doctest/doctest.h>

#include <vector>

#include "core/error.h"
#include "models/native/format_plan.h"

using namespace mpq;
using native::ActFormat;
using native::FormatRead;
using native::FormatValue;
using native::ValueFormats;

namespace {

const ActFormat kF32{};
const ActFormat kF16{DType::f16};
const ActFormat kBF16{DType::bf16};
ActFormat u8(float scale, int32_t zp) { return {DType::u8, scale, zp}; }

FormatRead wants(ActFormat f) { return FormatRead{f}; }
FormatRead residual(bool exact) {  // the CNN engine's residual read: f32 when exact, else nothing; never f16
  FormatRead r;
  if (exact) r.want = kF32;
  r.no_f16 = true;
  return r;
}

// A producer that writes the element types listed (an integer GEMM: {f32, u8}; the input image: {f32}).
FormatValue value(std::vector<DType> writes, std::vector<FormatRead> reads) {
  FormatValue v;
  v.can_write = [writes](DType d) {
    for (DType w : writes)
      if (w == d) return true;
    return false;
  };
  v.reads = std::move(reads);
  return v;
}
const std::vector<DType> kAll = {DType::f32, DType::f16, DType::bf16, DType::u8};

ValueFormats plan_one(const FormatValue& v) { return native::plan_formats({v})[0]; }

}  // namespace

TEST_CASE("format plan: readers that agree get their format, without conversions") {
  const ValueFormats p = plan_one(value(kAll, {wants(u8(0.1f, 3)), wants(u8(0.1f, 3))}));
  CHECK(p.stored == u8(0.1f, 3));
  CHECK(p.copies.empty());
  REQUIRE(p.reads.size() == 2);
  for (const auto& r : p.reads) CHECK((r.buffer == 0 && !r.converts));
  CHECK(plan_one(value(kAll, {wants(kF16)})).stored == kF16);
}

TEST_CASE("format plan: readers that disagree get f32, and the non-f32 ones convert") {
  // u8 with another zero point (or scale) is another format
  const ValueFormats p = plan_one(value(kAll, {wants(u8(0.1f, 3)), wants(u8(0.1f, 4)), wants(kF32)}));
  CHECK(p.stored == kF32);
  CHECK(p.stored.dt == DType::f32);
  CHECK(p.copies.empty());  // no copies asked for: each reader converts for itself
  REQUIRE(p.reads.size() == 3);
  CHECK(p.reads[0].converts);
  CHECK(p.reads[1].converts);
  CHECK(!p.reads[2].converts);
  for (const auto& r : p.reads) CHECK(r.buffer == 0);
  CHECK(plan_one(value(kAll, {wants(u8(0.1f, 3)), wants(u8(0.2f, 3))})).stored == kF32);
  CHECK(plan_one(value(kAll, {wants(kF16), wants(kBF16)})).stored == kF32);
  CHECK(plan_one(value(kAll, {})).stored == kF32);  // nobody reads it (the logits)
}

TEST_CASE("format plan: a producer that cannot write the agreed format leaves it f32") {
  const ValueFormats p = plan_one(value({DType::f32, DType::u8}, {wants(kF16), wants(kF16)}));  // an int8 GEMM
  CHECK(p.stored == kF32);
  CHECK(p.reads[0].converts);
  CHECK(p.reads[1].converts);
  CHECK(plan_one(value({DType::f32, DType::u8}, {wants(u8(0.5f, 0))})).stored == u8(0.5f, 0));
  CHECK(plan_one(value({DType::f32}, {wants(u8(0.5f, 0))})).stored == kF32);  // the input image
  FormatValue none = value(kAll, {wants(kF16)});
  none.can_write = nullptr;  // no producer description: f32
  CHECK(plan_one(none).stored == kF32);
}

TEST_CASE("format plan: a residual reader blocks f16 but not u8, an exact one asks for f32") {
  // not exact: the residual asks for nothing, so the other readers decide -- unless they agree on f16
  CHECK(plan_one(value(kAll, {wants(kF16), residual(false)})).stored == kF32);
  CHECK(plan_one(value(kAll, {wants(u8(0.1f, 3)), residual(false)})).stored == u8(0.1f, 3));
  const ValueFormats p = plan_one(value(kAll, {residual(false), wants(kBF16)}));
  CHECK(p.stored == kBF16);
  CHECK((p.reads[0].buffer == 0 && !p.reads[0].converts));
  // exact: f32 unless every reader is satisfied with f32 anyway
  CHECK(plan_one(value(kAll, {wants(u8(0.1f, 3)), residual(true)})).stored == kF32);
  CHECK(plan_one(value(kAll, {residual(true)})).stored == kF32);
  // without the flag, f16 readers alone get f16
  CHECK(plan_one(value(kAll, {wants(kF16), FormatRead{}})).stored == kF16);
}

TEST_CASE("format plan: a read may follow a later value's format (the max pool), decided last value first") {
  // value 0 -> max pool -> value 1 -> {u8 reader, u8 reader}; value 0 is also read by an f16 reader in case 2
  std::vector<FormatValue> g(2);
  FormatRead pool;
  pool.same_as = 1;
  g[0] = value(kAll, {pool});
  g[1] = value(kAll, {wants(u8(0.1f, 3)), wants(u8(0.1f, 3))});
  auto p = native::plan_formats(g);
  CHECK(p[1].stored == u8(0.1f, 3));
  CHECK(p[0].stored == u8(0.1f, 3));  // pooled in u8: no conversion
  CHECK(!p[0].reads[0].converts);
  g[1] = value(kAll, {wants(u8(0.1f, 3)), wants(u8(0.2f, 3))});  // the pool's readers disagree: f32 on both
  p = native::plan_formats(g);
  CHECK(p[1].stored == kF32);
  CHECK(p[0].stored == kF32);
  g[0] = value({DType::f32}, {pool});  // the pool's producer writes f32 only: the pool converts its input
  g[1] = value(kAll, {wants(kF16)});
  p = native::plan_formats(g);
  CHECK(p[1].stored == kF16);
  CHECK(p[0].stored == kF32);
  CHECK(p[0].reads[0].converts);
  // a read may only follow a later value
  std::vector<FormatValue> bad(2);
  FormatRead back;
  back.same_as = 0;
  bad[1] = value(kAll, {back});
  CHECK_THROWS_AS(native::plan_formats(bad), Error);
}

TEST_CASE("format plan: copies are deduplicated in first-reader order, the producer writes the first") {
  // X of a BERT layer: query / key / value read u8(0.1, 3), u8(0.1, 3), f16; the residual reads f32.
  FormatValue x = value(kAll, {wants(u8(0.1f, 3)), wants(u8(0.1f, 3)), wants(kF16), wants(kF32)});
  x.copies = true, x.direct_copies = 1;
  ValueFormats p = plan_one(x);
  CHECK(p.stored == kF32);
  REQUIRE(p.copies.size() == 2);
  CHECK(p.copies[0] == u8(0.1f, 3));
  CHECK(p.copies[1] == kF16);
  REQUIRE(p.reads.size() == 4);
  CHECK(p.reads[0].buffer == 1);
  CHECK(p.reads[1].buffer == 1);  // shares the first reader's copy
  CHECK(p.reads[2].buffer == 2);
  CHECK(p.reads[3].buffer == 0);
  CHECK(!p.reads[0].converts);  // the producer writes copy 1 (the layer norm's second output)
  CHECK(!p.reads[1].converts);
  CHECK(p.reads[2].converts);  // fills copy 2 from the stored value
  CHECK(!p.reads[3].converts);

  // f32 readers read the stored value; a later reader of an existing copy does not convert again
  x.reads = {wants(kF32), wants(kBF16), wants(u8(0.2f, 7)), wants(kBF16), wants(kF32)};
  x.direct_copies = 0;
  p = plan_one(x);
  REQUIRE(p.copies.size() == 2);
  CHECK(p.copies[0] == kBF16);
  CHECK(p.copies[1] == u8(0.2f, 7));
  const int buffer[] = {0, 1, 2, 1, 0};
  const bool converts[] = {false, true, true, false, false};
  for (size_t i = 0; i < 5; ++i) {
    CAPTURE(i);
    CHECK(p.reads[i].buffer == buffer[i]);
    CHECK(p.reads[i].converts == converts[i]);
  }

  // readers that all agree keep no copy even with copies allowed
  x.reads = {wants(kF16), wants(kF16)};
  p = plan_one(x);
  CHECK(p.stored == kF16);
  CHECK(p.copies.empty());

  // a copy the producer is to write must be one it can write
  FormatValue y = value({DType::f32}, {wants(kF16), wants(kF32)});
  y.copies = true, y.direct_copies = 1;
  CHECK_THROWS_AS(plan_one(y), Error);
}

TEST_CASE("format plan: BERT's q / k / v copies equal the slot loop they replaced, every format triple") {
  const ActFormat fmts[] = {kF32, kF16, kBF16, u8(0.1f, 3), u8(0.1f, 4)};
  int cases = 0;
  for (const ActFormat& a : fmts)
    for (const ActFormat& b : fmts)
      for (const ActFormat& c : fmts) {
        const ActFormat in[3] = {a, b, c};
        // The loop bert_native.cpp ran before the planner: slots of the distinct non-f32 formats.
        std::vector<ActFormat> slot_fmt;
        int in_slot[3] = {-1, -1, -1};
        bool convert[3] = {false, false, false};
        for (int r = 0; r < 3; ++r) {
          if (in[r].dt == DType::f32) continue;
          int slot = -1;
          for (size_t s = 0; s < slot_fmt.size(); ++s)
            if (slot_fmt[s] == in[r]) slot = int(s);
          if (slot < 0) {
            slot = int(slot_fmt.size());
            slot_fmt.push_back(in[r]);
            convert[r] = slot > 0;
          }
          in_slot[r] = slot;
        }
        FormatValue x = value(kAll, {wants(a), wants(b), wants(c), wants(kF32)});
        x.copies = true, x.direct_copies = 1;
        const ValueFormats p = plan_one(x);
        CAPTURE(cases);
        CHECK(p.stored == kF32);
        CHECK(p.copies == slot_fmt);
        for (int r = 0; r < 3; ++r) {
          CHECK(p.reads[size_t(r)].buffer - 1 == in_slot[r]);
          CHECK(p.reads[size_t(r)].converts == convert[r]);
        }
        ++cases;
      }
  CHECK(cases == 125);
}
