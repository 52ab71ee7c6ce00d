#pragma once
// Internal to protocols/common: the parameters and inputs a condition names
// (schema.hpp describes the grammar). Throws std::invalid_argument for a
// condition that does not parse or names something undeclared.
#include <set>
#include <string>
#include <string_view>

#include "common/schema.hpp"

namespace tessera::protocol {

std::set<std::string> condition_names(const Schema& s, std::string_view text);

}  // namespace tessera::protocol
