// netc.cpp - the compiler driver: flags, the stages in order, --emit, and
// linking the generated object with the runtime into an executable (or, for
// `netc run`, running it in this process: Jit.h).
#include "compiler/codegen/Codegen.h"
#include "compiler/codegen/Parallel.h"
#include "compiler/codegen/Target.h"
#include "compiler/driver/Jit.h"
#include "Plot.h"
#include "compiler/graph/Ops.h"
#include "compiler/plan/MemoryPlanner.h"
#include "compiler/sema/Sema.h"
#include "compiler/transforms/Explain.h"
#include "compiler/transforms/Pipeline.h"
#include "dsl/Parser.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ostream.h>
#include <nlohmann/json.hpp>
#include <llvm/IR/LLVMContext.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/Path.h>
#include <llvm/Support/Program.h>
#include <llvm/Support/raw_ostream.h>

#include <cassert>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unistd.h>

#ifndef NETC_VERSION
#define NETC_VERSION "0.0.0"
#endif

namespace {

using namespace netc;

struct Options {
  std::string input;
  std::string output;
  std::string emit = "exe";
  std::string cpu = "native";
  int optLevel = 3;
  std::string name; ///< the model's name (default: the file's stem)
  std::string explainGrad;
  std::string gradientFault; ///< test-only
  bool noWinograd = false;
  /// netc run: the program's flags (after the model file).
  std::vector<std::string> programArgs;
  bool timings = false; ///< netc run --timings
  bool distributed = false; ///< --distributed: data-parallel training over MPI
};

int fail(const std::string &message) {
  std::cerr << "netc: error: " << message << '\n';
  return 1;
}

std::optional<std::string> readFile(const std::string &path, std::string &error) {
  if (llvm::sys::fs::is_directory(path)) {
    error = fmt::format("'{}' is a directory", path);
    return std::nullopt;
  }
  // A device or a pipe (/dev/zero) would be read forever; a model is a file.
  llvm::sys::fs::file_status status;
  if (!llvm::sys::fs::status(path, status) && !llvm::sys::fs::is_regular_file(status)) {
    error = fmt::format("'{}' is not a regular file", path);
    return std::nullopt;
  }
  uint64_t size = 0;
  if (!llvm::sys::fs::file_size(path, size) && size > (64u << 20)) {
    error = fmt::format("'{}' is {} MB; a .nn file is at most 64 MB", path, size >> 20);
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read '{}': {}", path, std::strerror(errno));
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  // Editors on Windows start UTF-8 files with a byte order mark; it is not
  // part of the program.
  std::string source = text.str();
  if (source.starts_with("\xEF\xBB\xBF"))
    source.erase(0, 3);
  return source;
}

/// A temporary file beside `path` with a random name, created exclusively
/// (O_EXCL: no planted symlink or concurrent netc shares it).
std::optional<std::string> uniqueTemporary(const std::string &path, int &fd, std::string &error) {
  llvm::SmallString<256> tmp;
  if (auto ec = llvm::sys::fs::createUniqueFile(path + ".netc-%%%%%%%%%%%%.tmp", fd, tmp)) {
    error = fmt::format("cannot write '{}': {}", path, ec.message());
    return std::nullopt;
  }
  return std::string(tmp);
}

/// Moves the finished temporary file over `path` and syncs its folder.
bool publish(const std::string &tmp, const std::string &path, std::string &error) {
  if (auto ec = llvm::sys::fs::rename(tmp, path)) {
    error = fmt::format("cannot write '{}': {}", path, ec.message());
    llvm::sys::fs::remove(tmp);
    return false;
  }
  llvm::SmallString<256> dir(path);
  llvm::sys::path::remove_filename(dir);
  int fd;
  if (dir.empty())
    dir = ".";
  if (!llvm::sys::fs::openFileForRead(dir, fd)) {
    ::fsync(fd);
    ::close(fd);
  }
  return true;
}

/// Writes `data` to `path` through a temporary file, fsync and a rename, so
/// a failure never leaves a partial file behind.
bool writeAtomically(const std::string &path, std::string_view data, std::string &error) {
  int fd;
  auto tmp = uniqueTemporary(path, fd, error);
  if (!tmp)
    return false;
  bool ok;
  {
    llvm::raw_fd_ostream out(fd, /*shouldClose=*/false);
    out.write(data.data(), data.size());
    out.flush();
    ok = !out.has_error() && ::fsync(fd) == 0;
    if (!ok)
      error = fmt::format("cannot write '{}': {}", path,
                          out.has_error() ? out.error().message() : std::strerror(errno));
    out.clear_error();
  }
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    if (error.empty())
      error = fmt::format("cannot write '{}': {}", path, std::strerror(errno));
    llvm::sys::fs::remove(*tmp);
    return false;
  }
  return publish(*tmp, path, error);
}

/// An output must not be the input, nor an existing file that is not a
/// regular one (a device, a folder): it would be replaced.
bool checkOutput(const std::string &output, const std::string &input, std::string &error) {
  if (output == "-")
    return true;
  llvm::sys::fs::file_status st;
  if (llvm::sys::fs::status(output, st, /*follow=*/false))
    return true; // not there
  if (llvm::sys::fs::equivalent(output, input)) {
    error = fmt::format("the output '{}' is the input; give -o another name", output);
    return false;
  }
  if (st.type() != llvm::sys::fs::file_type::regular_file) {
    error = fmt::format("'{}' exists and is not a regular file; it is not replaced", output);
    return false;
  }
  return true;
}

/// The files an --emit writes: -o itself, or for a library NAME.o and NAME.h.
std::vector<std::string> outputFiles(const Options &o) {
  if (o.emit == "lib")
    return {o.output + ".o", o.output + ".h"};
  return {o.output};
}

/// --emit=lib: the object and its header, each written atomically (the
/// header last: a header beside an object always describes it).
int writeLibrary(const Options &o, const CompiledModel &model, const std::string &object) {
  std::string error;
  if (!writeAtomically(o.output + ".o", object, error) ||
      !writeAtomically(o.output + ".h", libraryHeader(model, o.input), error))
    return fail(error);
  return 0;
}

std::string defaultOutput(const Options &o) {
  llvm::StringRef stem = llvm::sys::path::stem(o.input);
  if (o.emit == "obj")
    return (stem + ".o").str();
  if (o.emit == "asm")
    return "-";
  if (o.emit == "exe" || o.emit == "lib")
    return stem.str();
  return "-";
}

/// The runtime archive: $NETC_RUNTIME_LIB (when set and not empty), else
/// ../lib/netc/ beside the netc executable (an installed netc), else the
/// build tree's.
std::optional<std::string> findRuntime(const char *argv0) {
  if (const char *env = std::getenv("NETC_RUNTIME_LIB"); env && *env)
    return std::string(env);
  std::string self = llvm::sys::fs::getMainExecutable(argv0, reinterpret_cast<void *>(&fail));
  llvm::SmallString<256> path(llvm::sys::path::parent_path(llvm::sys::path::parent_path(self)));
  llvm::sys::path::append(path, "lib", "netc", "libnetc_runtime.a");
  if (llvm::sys::fs::exists(path))
    return std::string(path);
#ifdef NETC_RUNTIME_LIB_PATH
  if (llvm::sys::fs::exists(NETC_RUNTIME_LIB_PATH))
    return std::string(NETC_RUNTIME_LIB_PATH);
#endif
  return std::nullopt;
}

/// The executable from the model's `objects` (one per compiled part) and
/// the runtime.
int link(const std::vector<std::string> &objects, const Options &o, const char *argv0) {
  auto runtime = findRuntime(argv0);
  if (!runtime)
    return fail("cannot find the netc runtime (libnetc_runtime.a); set NETC_RUNTIME_LIB");
  auto cc = llvm::sys::findProgramByName("cc");
  if (!cc)
    return fail("cannot find the system C compiler 'cc' to link with");
  std::vector<std::string> objPaths;
  auto removeObjects = [&] {
    for (const std::string &path : objPaths)
      llvm::sys::fs::remove(path);
  };
  for (const std::string &object : objects) {
    llvm::SmallString<128> objPath;
    int fd;
    if (auto ec = llvm::sys::fs::createTemporaryFile("netc", "o", fd, objPath)) {
      removeObjects();
      return fail("cannot create a temporary file: " + ec.message());
    }
    objPaths.push_back(std::string(objPath));
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << object;
    os.close();
    if (os.has_error()) {
      os.clear_error();
      removeObjects();
      return fail("cannot write a temporary object file " + std::string(objPath));
    }
  }
  std::string error;
  int exeFd;
  auto tmpExe = uniqueTemporary(o.output, exeFd, error);
  if (!tmpExe) {
    removeObjects();
    return fail(error);
  }
  ::close(exeFd);
  std::vector<std::string> mpi; // --distributed: the MPI runtime, then libmpi
  if (o.distributed) {
#ifdef NETC_MPI_LIB_PATH
    llvm::SmallString<256> lib(llvm::sys::path::parent_path(*runtime));
    llvm::sys::path::append(lib, "libnetc_mpi.a");
    mpi.push_back(llvm::sys::fs::exists(lib) ? std::string(lib) : std::string(NETC_MPI_LIB_PATH));
    for (llvm::StringRef rest = NETC_MPI_LINK; !rest.empty();) {
      auto [flag, tail] = rest.split('\n');
      if (!flag.empty())
        mpi.push_back(flag.str());
      rest = tail;
    }
#endif
  }
  std::vector<llvm::StringRef> args = {*cc, "-o", *tmpExe};
  args.insert(args.end(), objPaths.begin(), objPaths.end());
  args.insert(args.end(), mpi.begin(), mpi.end());
  args.insert(args.end(), {*runtime, "-lstdc++", "-lm", "-lz"});
  int rc = llvm::sys::ExecuteAndWait(*cc, args, std::nullopt, {}, 0, 0, &error);
  removeObjects();
  if (rc != 0) {
    llvm::sys::fs::remove(*tmpExe);
    return fail(fmt::format("linking failed{}", error.empty() ? "" : ": " + error));
  }
  return publish(*tmpExe, o.output, error) ? 0 : fail(error);
}

std::optional<Stage> middleStage(const std::string &emit) {
  if (emit == "graph")
    return Stage::Graph;
  if (emit == "modes")
    return Stage::Modes;
  if (emit == "grad")
    return Stage::Grad;
  if (emit == "step")
    return Stage::Step;
  if (emit == "opt")
    return Stage::Opt;
  if (emit == "plan")
    return Stage::Plan;
  return std::nullopt;
}

int emitText(const Options &o, const std::string &text) {
  if (o.output == "-") {
    std::cout << text;
    return 0;
  }
  std::string error;
  return writeAtomically(o.output, text, error) ? 0 : fail(error);
}

int compile(Options o, const char *argv0) {
  std::string error;
  useWinogradConvolutions(!o.noWinograd);
  if (!o.gradientFault.empty() && !injectGradientFault(o.gradientFault))
    return fail("--inject-gradient-fault: no op '" + o.gradientFault + "' with a gradient rule");
  auto text = readFile(o.input, error);
  if (!text)
    return fail(error);
  if (o.output.empty())
    o.output = o.explainGrad.empty() ? defaultOutput(o) : "-";
  for (const std::string &output : outputFiles(o))
    if (o.emit != "run" && !checkOutput(output, o.input, error))
      return fail(error);

  SourceFile file(o.input, std::move(*text));
  DiagnosticEngine diags(file, std::cerr);
  ast::Program program = parseProgram(file, diags);
  if (diags.hasErrors())
    return 1;
  if (o.emit == "ast") {
    std::ostringstream out;
    printAst(program, file, out);
    return emitText(o, out.str());
  }
  std::string name = o.name.empty() ? llvm::sys::path::stem(o.input).str() : o.name;
  if (o.emit == "lib" && std::isdigit(static_cast<unsigned char>(name[0])))
    return fail(fmt::format("the model's name '{}' cannot prefix C functions; give --name", name));
  llvm::SmallString<256> folder(o.input);
  llvm::sys::fs::make_absolute(folder);
  llvm::sys::path::remove_filename(folder);
  auto model = checkProgram(program, name, diags, folder.str().str());
  if (!model)
    return 1;

  if (!o.explainGrad.empty()) {
    std::ostringstream out;
    if (!explainGradient(*model, o.explainGrad, out, error))
      return fail(error);
    return emitText(o, out.str());
  }
#ifndef NETC_MPI_LIB_PATH
  if (o.distributed && o.emit == "exe")
    return fail("this netc was built without MPI: --distributed needs Open MPI (Debian "
                "libopenmpi-dev) when netc is built");
#endif
  auto stage = middleStage(o.emit);
  std::ostringstream dump;
  PipelineOptions pipeline;
  pipeline.distributed = o.distributed;
  auto compiled =
      runPipeline(std::move(*model), stage.value_or(Stage::Done), dump, diags, pipeline);
  if (diags.hasErrors())
    return 1;
  if (!compiled)
    return emitText(o, dump.str());

  auto target = createTarget(o.cpu);
  if (!target)
    return fail(llvm::toString(target.takeError()));
  llvm::LLVMContext context;
  auto emitted = emitModule(context, *compiled, *target, /*withMain=*/o.emit == "exe");
  if (o.emit == "run") {
    if (!o.cpu.empty() && o.cpu != "native")
      return fail("netc run compiles for this machine; --cpu is for the files netc writes");
    // The program netc would link is named after the model: so are its files.
    std::vector<std::string> args = {name};
    args.insert(args.end(), o.programArgs.begin(), o.programArgs.end());
    return runModule(*emitted, compiled->model.name, o.optLevel, args, o.timings);
  }
  // Optimized and compiled in parts on every core (Parallel.h): an
  // executable links the parts' objects; the other outputs join the
  // optimized parts into one module again.
  const std::string symbol = modelSymbol(compiled->model.name);
  std::vector<std::string> order = functionOrder(*emitted);
  std::vector<ModulePart> parts = splitModule(*emitted, compiled->model.name, compileThreads());
  std::vector<const ModulePart *> all;
  for (const ModulePart &p : parts)
    all.push_back(&p);
  if (o.emit == "exe") {
    // Each part's object on every core, all linked (as netc run does).
    if (o.output == "-")
      return fail("an executable cannot go to standard output; give -o NAME");
    std::vector<std::string> objects;
    if (auto err = compileParts(all, o.cpu, o.optLevel, /*object=*/true, objects))
      return fail(llvm::toString(std::move(err)));
    return link(objects, o, argv0);
  }
  std::vector<std::string> optimized;
  if (auto err = compileParts(all, o.cpu, o.optLevel, /*object=*/false, optimized))
    return fail(llvm::toString(std::move(err)));
  llvm::LLVMContext joinedContext;
  auto joined = joinParts(joinedContext, optimized, symbol, order);
  if (!joined)
    return fail(llvm::toString(joined.takeError()));
  llvm::Module *module = joined->get();
  if (o.emit == "llvm") {
    std::string ir;
    llvm::raw_string_ostream os(ir);
    module->print(os, nullptr);
    return emitText(o, os.str());
  }
  auto code = emitMachineCode(*module, *target, o.emit == "asm");
  if (!code)
    return fail(llvm::toString(code.takeError()));
  if (o.emit == "asm")
    return emitText(o, *code);
  if ((o.emit == "obj" || o.emit == "lib") && o.output == "-")
    return fail(fmt::format("--emit={} writes files; give -o NAME", o.emit));
  if (o.emit == "obj")
    return writeAtomically(o.output, *code, error) ? 0 : fail(error);
  assert(o.emit == "lib" && "the other outputs returned above");
  return writeLibrary(o, *compiled, *code);
}

/// `netc run [-O N] [--name NAME] MODEL.nn [program flags]`: netc's own
/// flags come before the model file, the program's after it.
int run(int argc, char **argv) {
  Options o;
  o.emit = "run";
  int i = 2;
  for (; i < argc && argv[i][0] == '-'; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> const char * { return i + 1 < argc ? argv[++i] : nullptr; };
    const char *v = nullptr;
    if (flag == "-O" && (v = value()))
      flag += v;
    if (flag.size() == 3 && flag.starts_with("-O") && flag[2] >= '0' && flag[2] <= '3')
      o.optLevel = flag[2] - '0';
    else if (flag == "--name" && (v = value()))
      o.name = v;
    else if (flag == "--timings")
      o.timings = true;
    else
      return fail(fmt::format("netc run: unknown flag '{}' before the model file (netc run "
                              "[-O N] [--name NAME] [--timings] MODEL.nn [program flags])",
                              flag));
  }
  if (i >= argc)
    return fail("netc run: no model file (netc run [-O N] [--name NAME] [--timings] MODEL.nn "
                "[program flags])");
  o.input = argv[i];
  o.programArgs.assign(argv + i + 1, argv + argc);
  o.output = "-";
  return compile(o, argv[0]);
}

/// `netc plot METRICS.jsonl [-o PLOT.svg]`: the loss and accuracy curves of
/// the last run a --metrics file holds (default output: the same name with
/// .svg), as the program's --plot draws them.
int plot(int argc, char **argv) {
  const char *usage = "netc plot METRICS.jsonl [-o PLOT.svg]";
  std::string input, output;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "-o" || arg == "--output") && i + 1 < argc)
      output = argv[++i];
    else if (input.empty() && !arg.starts_with("-"))
      input = arg;
    else
      return fail(fmt::format("netc plot: unexpected '{}' ({})", arg, usage));
  }
  if (input.empty())
    return fail(fmt::format("netc plot: no metrics file ({})", usage));
  if (output.empty())
    output = llvm::sys::path::parent_path(input).empty()
                 ? llvm::sys::path::stem(input).str() + ".svg"
                 : (llvm::sys::path::parent_path(input) + "/" + llvm::sys::path::stem(input) + ".svg").str();
  std::string error;
  auto text = readFile(input, error);
  if (!text)
    return fail(error);
  if (!checkOutput(output, input, error))
    return fail(error);
  std::vector<nlohmann::json> records;
  std::istringstream lines(*text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object())
      return fail(fmt::format("{}:{}: not a JSON object (a --metrics file has one per line)",
                              input, number));
    records.push_back(std::move(record));
  }
  records = rt::lastRun(records);
  bool any = std::any_of(records.begin(), records.end(), [](const nlohmann::json &r) {
    return r.value("event", "") == "report" || r.value("event", "") == "epoch";
  });
  if (!any)
    return fail(fmt::format("'{}' holds no training records (report or epoch events)", input));
  if (!writeAtomically(output, rt::trainingPlot(records, input), error))
    return fail(error);
  std::cout << "plot written to " << output << '\n';
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  if (argc > 1 && std::string_view(argv[1]) == "run")
    return run(argc, argv);
  if (argc > 1 && std::string_view(argv[1]) == "plot")
    return plot(argc, argv);
  CLI::App app{"netc - compiles a .nn model into a native training program"};
  app.set_version_flag("--version",
                       std::string("netc ") + NETC_VERSION + " (LLVM " LLVM_VERSION_STRING ")");
  Options o;
  app.add_option("input", o.input, "the .nn model file")->required();
  app.add_option("-o,--output", o.output,
                 "output file (default: the model's name for an executable, "
                 "NAME.o for --emit=obj, NAME.o and NAME.h for --emit=lib, standard output "
                 "for text)");
  app.add_option("--emit", o.emit, "what to produce")
      ->check(CLI::IsMember(
          {"ast", "graph", "modes", "grad", "step", "opt", "plan", "llvm", "asm", "obj", "lib",
                             "exe"}))
      ->default_str("exe");
  app.add_option("--name", o.name,
                 "the model's name (default: the file's name without .nn); the object "
                 "defines the descriptor netc_model_NAME")
      ->check(CLI::Validator(
          [](std::string &v) -> std::string {
            bool ok = !v.empty() && !std::isdigit(static_cast<unsigned char>(v[0]));
            for (char c : v)
              ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
            return ok ? "" : "a name is letters, digits and '_', not starting with a digit";
          },
          "NAME"));
  app.add_option("--cpu", o.cpu,
                 "target CPU: 'native' (this machine, the default) or an LLVM "
                 "CPU name such as x86-64-v3");
  app.add_option("--explain-grad", o.explainGrad,
                 "print the derivative of the loss with respect to parameter NAME as a "
                 "formula in the model's own names");
  // Test-only and hidden (no group): makes one op's gradient rule wrong, so
  // the tests can show that --gradcheck catches it.
  app.add_option("--inject-gradient-fault", o.gradientFault)->group("");
  app.add_flag("--no-winograd", o.noWinograd,
               "convolutions through the implicit GEMM only (by default a 3x3 stride-1 "
               "convolution followed by 2x2 max pooling uses Winograd's F(2x2, 3x3))");
  app.add_option("-O", o.optLevel, "optimization level 0-3 (default 3)")->check(CLI::Range(0, 3));
  app.add_flag("--distributed", o.distributed,
               "data-parallel training: the program also runs under mpirun -np N, each "
               "process computing its shards of every batch, with weights bitwise equal "
               "for any N (the loss must be a sum or mean over examples)");
  app.footer("netc run [-O N] [--name NAME] [--timings] MODEL.nn [program flags]: compiles the model in "
             "memory and runs its program at once (the same flags, output and files as the "
             "program netc links).\n"
             "netc plot METRICS.jsonl [-o PLOT.svg]: the loss and accuracy curves of a "
             "program's --metrics file as an SVG picture.\n"
             "Stages for --emit: ast, graph (forward), grad (with gradients), step "
             "(with optimizer updates), opt (simplified and fused), plan (memory), "
             "llvm, asm, obj, lib (NAME.o and the C header NAME.h: the model in your "
             "program), exe (the default).");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == 0)
      return app.exit(e);
    std::cerr << "netc: error: " << e.what() << "\n(run 'netc --help' for usage)\n";
    return 1;
  }
  return compile(o, argv[0]);
}
