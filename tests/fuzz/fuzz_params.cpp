// libFuzzer harness for the --params file (protocols/common/cli.cpp):
// read_params_file and its validation, resolve, against the schema of the test
// programs' fake program (tests/protocols/fake_program.hpp: inputs, ranges,
// choices, conditions, the common options).
//
// Feeds: the input bytes as params.json (the seeds name /dev/null as their
// input files: a path that exists wherever the harness runs).
// Failure: any exception other than tessera::InputError (e.g. a JSON error
// other than a parse error, a std::logic_error), an InputError that is not one
// line, a run whose Values::to_json() does not reproduce it when read back as a
// --params file, a crash or sanitizer report, a hang or a huge allocation.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/cli.hpp"
#include "fake_program.hpp"
#include "fuzz_util.hpp"

namespace {

const tessera::protocol::Schema& schema() {
  static const tessera::protocol::Schema s = tessera::test::fake_schema();
  return s;
}

tessera::protocol::Values resolve_file(const std::filesystem::path& path) {
  return tessera::protocol::resolve(schema(), tessera::protocol::read_params_file(schema(), path));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tessera;
  const std::filesystem::path path = fuzz::write_input("params.json", data, size);
  std::optional<protocol::Values> values;
  if (!fuzz::expect_clean("", [&] { values = resolve_file(path); })) return 0;
  const std::string again = values->to_json().dump();
  const std::filesystem::path copy =
      fuzz::write_input("again.json", reinterpret_cast<const std::uint8_t*>(again.data()), again.size());
  try {
    if (resolve_file(copy).to_json() != values->to_json()) fuzz::bug("to_json() does not reproduce the run: " + again);
  } catch (const std::exception& e) {
    fuzz::bug(std::string("to_json() does not read back: ") + e.what() + ": " + again);
  }
  return 0;
}
