#pragma once
// tessera_subtract's schema: its inputs, options, outputs and their help (main.cpp runs it).
#include "common/schema.hpp"

namespace tessera::protocol {

Schema subtract_schema();

}  // namespace tessera::protocol
