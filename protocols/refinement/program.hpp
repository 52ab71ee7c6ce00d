#pragma once
// A refinement program: the schema, option parsing, input checks, start (or
// --continue) and the run of the one refinement loop (tessera/refine.hpp), shared by
// tessera_refine_homo and tessera_refine_nu. A program's main.cpp only says what
// differs: its name and description, its own parameters and outputs, and the
// loop's parts it chooses from its values (e.g. the regularizer).
#include <functional>
#include <memory>
#include <string>

#include "common/cli.hpp"
#include "common/run_context.hpp"
#include "common/schema.hpp"
#include "tessera/refine.hpp"

namespace tessera::protocol {

struct RefinementProgram {
  std::string name;         ///< e.g. "tessera_refine_homo"
  std::string label;        ///< one-line title
  std::string description;  ///< --help and the Scipion form
  std::vector<std::string> citations{};  ///< DOIs
  bool marginalize_by_default = false;   ///< --marginalize's default
  /// Declares the program's own parameters and outputs (after the common ones); may be empty.
  std::function<void(Schema&)> declare{};
  /// The regularizer the program's values ask for; null (or returning null): the Wiener filter
  /// of homogeneous refinement (make_fsc_regularizer).
  std::function<std::unique_ptr<Regularizer>(const Values&)> regularizer{};
  /// Writes the program's own outputs after the common ones (leader only); may be empty.
  std::function<void(RunContext&, const RefineState&, double pixel_A)> write_outputs{};
};

/// The program's schema: the inputs, parameters and outputs every refinement has, then its own.
Schema refinement_schema(const RefinementProgram& program);

/// main(): parses, checks, starts or continues, refines, writes the outputs.
int run_refinement_program(const RefinementProgram& program, int argc, char** argv);

}  // namespace tessera::protocol
