// One name table per enum: the single place where an enum value and its user-visible spelling meet.
// enum_name() prints, parse_enum() reads back and refuses anything else with a message naming the value
// and listing every accepted spelling, e.g. "precision 'int3' is unknown (expected fp32, fp16, ...)".
#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include "core/error.h"

namespace mpq {

template <class E>
struct EnumName {
  E value;
  const char* name;
};

template <class E, size_t N>
constexpr const char* enum_name(const std::array<EnumName<E>, N>& table, E v) {
  for (const EnumName<E>& e : table)
    if (e.value == v) return e.name;
  return "?";
}

template <class E, size_t N>
std::string enum_choices(const std::array<EnumName<E>, N>& table) {
  std::string s;
  for (size_t i = 0; i < N; ++i) {
    if (i > 0) s += i + 1 == N ? " or " : ", ";
    s += table[i].name;
  }
  return s;
}

// `what` names the kind of value for the message ("precision", "observer", "ordering").
template <class E, size_t N>
E parse_enum(const std::array<EnumName<E>, N>& table, std::string_view s, std::string_view what) {
  for (const EnumName<E>& e : table)
    if (s == e.name) return e.value;
  fail("{} '{}' is unknown (expected {})", what, s, enum_choices(table));
}

}  // namespace mpq
