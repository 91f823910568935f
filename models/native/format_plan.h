// The activation format plan shared by both native engines: in which kernels::ActFormat (f32 / f16 / bf16 /
// u8 with scale + zero point, ops/kernels/act_format.h) each intermediate value is stored, and which readers
// convert. An engine describes its values (who can write what, who reads what) and applies the answer.
//
// The rule, per value:
//   stored format: the format every reader asks for when they all agree, the producer can write it, and no
//     reader that cannot read f16 (no_f16) meets an f16 value; f32 otherwise (also when nobody asks);
//   without copies (the CNN engine): a reader asking for another format converts the stored value itself
//     (into its own scratch, on every run);
//   with copies (BERT: the layer norm output X, read by q / k / v and by a residual add): every distinct
//     format readers ask for besides the stored one is one copy, in first-reader order (identical formats,
//     ActFormat::operator==, share a copy). The producer writes the first `direct_copies` copies itself
//     (the layer norm's second output); the first reader of each later copy converts the stored value into
//     it, and readers after it read the converted copy.
#pragma once
#include <functional>
#include <optional>
#include <vector>

#include "core/dtype.h"
#include "ops/kernels/act_format.h"

namespace mpq::native {

using kernels::ActFormat;

// One read of a value.
struct FormatRead {
  std::optional<ActFormat> want;  // the format this reader computes on; nullopt: none (reads what is stored)
  int same_as = -1;               // >= 0: asks for whatever value `same_as` (a later value) is stored in
  bool no_f16 = false;            // cannot read f16 (a residual epilogue reads f32 or u8)
};

// One value: its producer and its readers, in the order they read.
struct FormatValue {
  std::function<bool(DType)> can_write;  // the element types the producer writes directly
  std::vector<FormatRead> reads;
  bool copies = false;    // keep one copy per distinct other format (else readers convert for themselves)
  int direct_copies = 0;  // with copies: how many of them the producer writes besides the stored value
};

struct ReadPlan {
  int buffer = 0;         // 0: the stored value; k >= 1: ValueFormats::copies[k - 1]
  bool converts = false;  // runs a conversion of the stored value before reading (into its scratch, or the copy)
};

struct ValueFormats {
  ActFormat stored;
  std::vector<ActFormat> copies;  // distinct formats read besides `stored` (only with FormatValue::copies)
  std::vector<ReadPlan> reads;    // one per FormatValue::reads, same order
};

// Plans every value. Values are decided from the last to the first, so a read's same_as must name a later
// value (checked). The result has one entry per value, same order.
std::vector<ValueFormats> plan_formats(const std::vector<FormatValue>& values);

}  // namespace mpq::native
