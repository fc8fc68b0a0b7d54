// DataSources.h - the table of data sources: what sema knows of each
// source (its options with their defaults, where its fields come from,
// which option --data replaces). Sema checks a `data` statement against its
// row; the runtime's source of the same name (runtime/src/data/) reads the
// options from the model description. Adding a source adds a row here and
// its reader there.
#pragma once

#include "compiler/graph/Graph.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace netc {

/// One option of a data source.
struct SourceOption {
  enum class Kind {
    Number, ///< a constant expression
    Text,   ///< a string
    Path,   ///< a string naming a file or folder, resolved against the .nn file's folder
    Classes ///< class names "a, b, c", or their number
  };
  std::string name;
  Kind kind = Kind::Number;
  double number = 0; ///< default of a Number (and a Classes count)
  std::string text;  ///< default of a Text or Path (and Classes names)
  bool required = false;
  std::string help; ///< shown by errors about it
};

/// A field every model on the source gets (sine's x and y).
struct SourceField {
  std::string name;
  Shape shape;
  DType dtype = DType::F32;
};

struct SourceSpec {
  enum class Fields {
    Fixed,    ///< the source's own fields (`fixed`)
    Inline,   ///< the tensors written as the options (inline)
    Declared, ///< any field the input/target declarations name
    Pair      ///< declared, exactly one input and one target
  };
  std::string name;
  std::string example; ///< a complete data statement, for messages
  Fields fields = Fields::Declared;
  std::vector<SourceField> fixed;
  std::vector<SourceOption> options;
  std::string pathOption; ///< the option --data replaces ("" for none)
};

/// Every data source, in the order "did you mean" and errors list them.
const std::vector<SourceSpec> &dataSources();

/// The row of `name`, or nullptr.
const SourceSpec *findDataSource(std::string_view name);

} // namespace netc
