#pragma once
// The message of the tessera::InputError that a piece of code throws, for tests
// of what bad input is told.
#include <gtest/gtest.h>

#include <string>

#include "tessera/error.hpp"

namespace tessera::test {

/// Runs f and returns the message of the InputError it throws; when it throws
/// none, the test fails and the message is "".
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError thrown";
  return {};
}

}  // namespace tessera::test
