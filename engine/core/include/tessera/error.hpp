#pragma once
/// Error types shared by the engine and the programs.
///
/// InputError: the user's input is wrong (a truncated MRC, a STAR without a
/// column, a mask of the wrong size, NaNs, a missing file). Its message is
/// one line that names the file (or parameter) and the problem; programs
/// print it as "ERROR: <message>" and exit with code 2, writing nothing.
/// Anything else thrown while running is a failure (exit code 1).
#include <stdexcept>
#include <string>

namespace tessera {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace tessera
