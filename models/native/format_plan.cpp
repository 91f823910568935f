#include "models/native/format_plan.h"

#include <algorithm>

#include "core/error.h"

namespace mpq::native {

std::vector<ValueFormats> plan_formats(const std::vector<FormatValue>& values) {
  const int nv = int(values.size());
  std::vector<ValueFormats> plan(values.size());
  for (int v = nv - 1; v >= 0; --v) {  // a same_as read names a later value: decide the last values first
    const FormatValue& val = values[size_t(v)];
    ValueFormats& out = plan[size_t(v)];
    // What each read asks for (nullopt: nothing).
    std::vector<std::optional<ActFormat>> want;
    bool no_f16 = false;
    for (const FormatRead& r : val.reads) {
      if (r.same_as >= 0) {
        check(r.same_as > v && r.same_as < nv,
              "native format plan: internal error: value {} reads as value {} (must be a later value)", v, r.same_as);
        want.emplace_back(plan[size_t(r.same_as)].stored);
      } else {
        want.push_back(r.want);
      }
      no_f16 |= r.no_f16;
    }
    const std::optional<ActFormat>* first = nullptr;
    bool agree = true;
    for (const std::optional<ActFormat>& w : want) {
      if (!w) continue;
      if (!first) first = &w;
      agree = agree && **first == *w;
    }
    const bool ok =
        first && agree && val.can_write && val.can_write((**first).dt) && !(no_f16 && (**first).dt == DType::f16);
    out.stored = ok ? **first : ActFormat{};

    out.reads.assign(val.reads.size(), ReadPlan{});
    for (size_t i = 0; i < want.size(); ++i) {
      if (!want[i] || *want[i] == out.stored) continue;  // reads the stored value as it is
      ReadPlan& rp = out.reads[i];
      if (!val.copies) {
        rp.converts = true;
        continue;
      }
      const auto it = std::find(out.copies.begin(), out.copies.end(), *want[i]);
      rp.buffer = int(it - out.copies.begin()) + 1;
      if (it != out.copies.end()) continue;  // an earlier reader's copy
      out.copies.push_back(*want[i]);
      if (rp.buffer > val.direct_copies) {
        rp.converts = true;  // the first reader of a copy the producer does not write fills it
      } else {
        check(val.can_write && val.can_write(want[i]->dt),
              "native format plan: internal error: value {}'s producer cannot write its copy in {}", v,
              dtype_name(want[i]->dt));
      }
    }
  }
  return plan;
}

}  // namespace mpq::native
