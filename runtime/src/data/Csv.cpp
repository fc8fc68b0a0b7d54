// Csv.cpp - the csv data source: users' own tables.
//
// csv(file, skip, header, delimiter, inputs, target, target_file, classes,
//     test_file, ...): the text (gzipped or not) is read line by line; the
// first `skip` lines are passed over (sklearn's tables start with a line of
// counts), then with `header` a line of column names. `inputs` and `target`
// pick columns: indices from 0 (negative from the end), names from the
// header, and Python-style ranges `a:b`, separated by commas; by default the
// target is the last column and the inputs are all the others. A class
// target holds integer labels or class names (mapped through the declared
// `classes`, else sorted as sklearn's LabelEncoder sorts them). Every error
// names file:line:column.
#include "Sources.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <sys/stat.h>

namespace netc::rt {

namespace {

struct GzClose {
  void operator()(gzFile f) const { gzclose(f); }
};

/// The whole file, uncompressed if it is gzipped; at most 4 GiB.
std::string readText(const std::string &path) {
  struct stat st;
  bool known = ::stat(path.c_str(), &st) == 0;
  if (known && S_ISDIR(st.st_mode))
    throw Error("'" + path + "' is a folder; give the table's file");
  if (known && !S_ISREG(st.st_mode))
    throw Error("'" + path +
                "' is not a regular file (a pipe or a device?); give the table's file");
  std::unique_ptr<gzFile_s, GzClose> f(gzopen(path.c_str(), "rb"));
  if (!f)
    throw Error("cannot read '" + path + "': " + std::strerror(errno ? errno : ENOENT));
  std::string text;
  char buf[1 << 16];
  for (;;) {
    int n = gzread(f.get(), buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      throw Error("cannot read '" + path + "': " + gzerror(f.get(), &code));
    }
    if (n == 0)
      break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > (size_t(1) << 32))
      throw Error("'" + path + "' is larger than 4 GiB");
  }
  return text;
}

struct Cell {
  std::string_view text;
  size_t column; ///< 1-based, in characters of the line
};

struct Line {
  size_t number; ///< 1-based
  std::vector<Cell> cells;
};

std::string_view trim(std::string_view s, size_t &offset) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
    ++offset;
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
    s = s.substr(1, s.size() - 2);
    ++offset;
  }
  return s;
}

/// Splits a line at `delimiter`; a space splits at runs of blanks.
std::vector<Cell> cells(std::string_view line, char delimiter) {
  std::vector<Cell> out;
  if (delimiter == ' ') {
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
        ++i;
      size_t start = i;
      while (i < line.size() && line[i] != ' ' && line[i] != '\t')
        ++i;
      if (i > start)
        out.push_back({line.substr(start, i - start), start + 1});
    }
    return out;
  }
  size_t start = 0;
  for (;;) {
    size_t end = line.find(delimiter, start);
    std::string_view raw = line.substr(start, end == std::string_view::npos ? end : end - start);
    size_t offset = start;
    std::string_view t = trim(raw, offset);
    out.push_back({t, offset + 1});
    if (end == std::string_view::npos)
      break;
    start = end + 1;
  }
  return out;
}

struct Table {
  std::string path;
  std::string text; ///< the cells are views into it
  std::vector<std::string> header;
  std::vector<Line> rows;
};

Table readTable(const std::string &path, size_t skip, bool header, char delimiter) {
  Table t{path, readText(path), {}, {}};
  const std::string &text = t.text;
  size_t number = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string_view line(text.data() + pos, (end == std::string::npos ? text.size() : end) - pos);
    pos = end == std::string::npos ? text.size() : end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (number <= skip)
      continue;
    if (line.find_first_not_of(" \t") == std::string_view::npos)
      continue; // blank lines, e.g. at the end
    if (header && t.header.empty()) {
      for (const Cell &c : cells(line, delimiter))
        t.header.emplace_back(c.text);
      continue;
    }
    t.rows.push_back({number, cells(line, delimiter)});
  }
  if (t.rows.empty())
    throw Error(
        "'" + path + "' has no rows of data" +
        (skip ? " after skipping " + counted(static_cast<int64_t>(skip), "line") : std::string()));
  size_t width = t.rows[0].cells.size();
  for (const Line &l : t.rows)
    if (l.cells.size() != width)
      throw Error(path + ":" + std::to_string(l.number) + ": this row has " +
                  std::to_string(l.cells.size()) + " columns, the first " + std::to_string(width));
  return t;
}

[[noreturn]] void fail(const Table &t, const Line &l, const Cell &c, const std::string &message) {
  throw Error(t.path + ":" + std::to_string(l.number) + ":" + std::to_string(c.column) + ": " +
              message);
}

bool parseInt(std::string_view s, int64_t &v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

/// The columns a spec names ("0:4", "2, -1", "sepal_length, petal_width").
std::vector<size_t> columns(const std::string &spec, const Table &t, const char *what) {
  auto width = static_cast<int64_t>(t.rows[0].cells.size());
  auto index = [&](std::string_view item, bool end) -> int64_t {
    if (item.empty())
      return end ? width : 0;
    int64_t v;
    if (parseInt(item, v)) {
      if (v < 0)
        v += width;
      if (v < 0 || v > width || (!end && v == width))
        throw Error("'" + t.path + "': " + what + " names column " + std::string(item) +
                    "; the table has " + std::to_string(width) + " (0 to " +
                    std::to_string(width - 1) + ")");
      return v;
    }
    for (size_t i = 0; i < t.header.size(); ++i)
      if (t.header[i] == item)
        return static_cast<int64_t>(i) + (end ? 1 : 0);
    throw Error("'" + t.path + "': " + what + " names the column '" + std::string(item) + "', " +
                (t.header.empty() ? std::string("but the table has no header (header = true)")
                                  : "which the header does not have"));
  };
  std::vector<size_t> out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    std::string item =
        spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t ignored = 0;
    std::string_view s = trim(item, ignored);
    size_t colon = s.find(':');
    if (colon == std::string_view::npos) {
      out.push_back(static_cast<size_t>(index(s, false)));
    } else {
      size_t ignore2 = 0;
      int64_t a = index(trim(s.substr(0, colon), ignore2), false);
      int64_t b = index(trim(s.substr(colon + 1), ignore2), true);
      for (int64_t i = a; i < b; ++i)
        out.push_back(static_cast<size_t>(i));
    }
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return out;
}

float number(const Table &t, const Line &l, const Cell &c) {
  // As NumPy reads it (a double), then to float32 as torch.tensor does.
  double v = 0;
  auto r = std::from_chars(c.text.data(), c.text.data() + c.text.size(), v);
  if (c.text.empty() || r.ec != std::errc() || r.ptr != c.text.data() + c.text.size())
    fail(t, l, c, "cannot read '" + std::string(c.text.substr(0, 40)) + "' as a number");
  return static_cast<float>(v);
}

struct Options {
  size_t skip;
  bool header;
  char delimiter;
};

Options options(const ModelInfo &m) {
  const std::string &d = m.text("delimiter");
  char delimiter = d == "tab" || d == "\\t" ? '\t' : d.empty() ? ',' : d[0];
  return {static_cast<size_t>(m.option("skip")), m.option("header") != 0, delimiter};
}

/// One file's examples: inputs from `inputs` columns, targets from the
/// target columns (of this file, or of `targetFile`).
std::shared_ptr<const Dataset> load(const ModelInfo &m, const std::string &file,
                                    const std::string &targetFile,
                                    std::vector<std::string> &classNames) {
  Options o = options(m);
  Table table = readTable(file, o.skip, o.header, o.delimiter);
  Table targets =
      targetFile.empty() ? Table{} : readTable(targetFile, o.skip, o.header, o.delimiter);
  const Table &tt = targetFile.empty() ? table : targets;
  if (!targetFile.empty() && targets.rows.size() != table.rows.size())
    throw Error("'" + targetFile + "' has " + std::to_string(targets.rows.size()) + " rows, '" +
                file + "' " + std::to_string(table.rows.size()));
  auto width = tt.rows[0].cells.size();
  std::vector<size_t> targetCols = m.text("target").empty()
                                       ? std::vector<size_t>{width - 1}
                                       : columns(m.text("target"), tt, "target");
  std::vector<size_t> inputCols;
  if (!m.text("inputs").empty()) {
    inputCols = columns(m.text("inputs"), table, "inputs");
  } else {
    for (size_t c = 0; c < table.rows[0].cells.size(); ++c)
      if (!targetFile.empty() ||
          std::find(targetCols.begin(), targetCols.end(), c) == targetCols.end())
        inputCols.push_back(c);
  }
  std::vector<FieldLayout> layouts = fieldLayouts(m);
  std::vector<TableDataset::Column> cols(layouts.size());
  int classField = -1;
  for (size_t f = 0; f < layouts.size(); ++f) {
    const FieldLayout &l = layouts[f];
    const std::vector<size_t> &picked = l.role == "input" ? inputCols : targetCols;
    if (static_cast<int64_t>(picked.size()) != l.numel)
      throw Error("'" + file + "': the model's " + l.role + " '" + l.name + "' takes " +
                  counted(l.numel, "value") + " per example, the " +
                  (l.role == "input" ? "inputs" : "target") + " columns are " +
                  std::to_string(picked.size()) +
                  (l.role == "input" ? " (choose them with inputs = \"...\")"
                                     : " (choose them with target = \"...\")"));
    if (l.integer)
      classField = static_cast<int>(f);
  }
  // Class names in the target column: the declared ones, else sorted.
  std::map<std::string, int64_t, std::less<>> classIndex;
  if (classField >= 0) {
    std::vector<std::string> names = m.classes;
    bool allIntegers = true;
    std::set<std::string, std::less<>> seen;
    for (const Line &l : tt.rows) {
      int64_t v;
      std::string_view text = l.cells[targetCols[0]].text;
      if (!parseInt(text, v)) {
        allIntegers = false;
        seen.emplace(text);
      }
    }
    if (!allIntegers && names.empty())
      names.assign(seen.begin(), seen.end());
    for (size_t i = 0; i < names.size(); ++i)
      classIndex.emplace(names[i], static_cast<int64_t>(i));
    if (!allIntegers)
      classNames = names;
  }
  int64_t classes = classNames.empty() ? classCount(m) : static_cast<int64_t>(classNames.size());
  for (size_t r = 0; r < table.rows.size(); ++r) {
    for (size_t f = 0; f < layouts.size(); ++f) {
      bool input = layouts[f].role == "input";
      const Table &src = input ? table : tt;
      const Line &line = src.rows[r];
      for (size_t c : input ? inputCols : targetCols) {
        const Cell &cell = line.cells[c];
        if (!layouts[f].integer) {
          cols[f].floats.push_back(number(src, line, cell));
          continue;
        }
        int64_t v;
        if (!parseInt(cell.text, v)) {
          auto it = classIndex.find(cell.text);
          if (it == classIndex.end())
            fail(src, line, cell,
                 "'" + std::string(cell.text.substr(0, 40)) +
                     "' is not one of the declared classes");
          v = it->second;
        }
        if (v < 0 || v >= classes)
          fail(src, line, cell,
               "class " + std::to_string(v) + " is not a class of this model (0 to " +
                   std::to_string(classes - 1) + ")");
        cols[f].ints.push_back(v);
      }
    }
  }
  return std::make_shared<TableDataset>(std::move(layouts), std::move(cols),
                                        static_cast<int64_t>(table.rows.size()));
}

} // namespace

std::shared_ptr<const Dataset> csvInputs(const ModelInfo &m, const std::string &file) {
  Options o = options(m);
  Table table = readTable(file, o.skip, o.header, o.delimiter);
  std::vector<FieldLayout> layouts = inputLayouts(m);
  if (layouts.size() != 1)
    throw Error("predictions from a csv file need a model with one input field");
  auto width = static_cast<int64_t>(table.rows[0].cells.size());
  // The columns the training table used, or all of them (a table of inputs
  // only), or all but the last (the training table's layout).
  std::vector<size_t> cols;
  if (!m.text("inputs").empty()) {
    cols = columns(m.text("inputs"), table, "inputs");
  } else {
    int64_t take = width == layouts[0].numel ? width : width - 1;
    for (int64_t c = 0; c < take; ++c)
      cols.push_back(static_cast<size_t>(c));
  }
  if (static_cast<int64_t>(cols.size()) != layouts[0].numel)
    throw Error("'" + file + "' has " + std::to_string(width) + " columns; the model's input '" +
                layouts[0].name + "' takes " + std::to_string(layouts[0].numel));
  std::vector<TableDataset::Column> out(1);
  for (const Line &l : table.rows)
    for (size_t c : cols)
      out[0].floats.push_back(number(table, l, l.cells[c]));
  return std::make_shared<TableDataset>(std::move(layouts), std::move(out),
                                        static_cast<int64_t>(table.rows.size()));
}

Splits openCsv(const ModelInfo &m, const std::string &file) {
  Splits s;
  s.train = load(m, file, m.text("target_file"), s.classes);
  const std::string &testFile = m.text("test_file");
  if (testFile.empty()) {
    s.description = counted(s.train->size(), "example");
    return s;
  }
  std::vector<std::string> testClasses;
  s.test = load(m, testFile, m.text("test_target_file"), testClasses);
  if (testClasses != s.classes && !testClasses.empty())
    throw Error("'" + testFile + "' has other class names than '" + file +
                "'; declare them with classes = \"...\"");
  s.description =
      std::to_string(s.train->size()) + " training, " + counted(s.test->size(), "test example");
  return s;
}

} // namespace netc::rt
