# lit configuration for netc's golden tests: one folder per compiler stage
# (parse, sema, graph, grad, step, opt, plan, llvm) plus driver and e2e.
import os
import lit.formats

config.name = "netc"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".nn", ".test"]
config.excludes = ["Inputs", "unit", "fuzz", "reference", "models", "expected", "data", "audio", "CMakeLists.txt"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.netc_obj_root, "test")

config.substitutions.append(("%netc_build", config.netc_obj_root))
config.substitutions.append(("%netc", config.netc_bin))
config.substitutions.append(("%runtime_lib", os.environ.get("NETC_RUNTIME_LIB", config.netc_runtime)))
# The C library a model's --emit=lib object links with (beside the runtime).
config.substitutions.append(("%core_lib", os.path.join(os.path.dirname(config.netc_runtime), "libnetc_core.a")))
config.substitutions.append(("%runtime_include", os.path.join(config.netc_src_root, "runtime", "include")))
config.substitutions.append(("%FileCheck", config.filecheck))
config.substitutions.append(("%python", config.python))
config.substitutions.append(("%examples", os.path.join(config.netc_src_root, "examples")))
config.substitutions.append(("%tools", os.path.join(config.netc_src_root, "test", "tools")))
# Scratch memory starts as NaNs in every emitted program the tests run
# (runtime/src/Trainer.h): reading what no kernel wrote cannot pass.
config.environment["NETC_POISON_SCRATCH"] = "1"
config.environment["PATH"] = os.pathsep.join(
    [os.path.dirname(config.filecheck), config.environment.get("PATH", "/usr/bin:/bin")])

# A CPU whose code this machine cannot run, for the test of the emitted
# programs' CPU check: AMD's znver4 has SSE4a (Intel CPUs do not), Intel's
# sapphirerapids has AVX512-FP16 and AMX (AMD CPUs so far do not). Chosen by
# the vendor: the programs ask CPUID, and /proc/cpuinfo's flags can omit
# what CPUID reports (an AMD EPYC VM here listed no sse4a, which its CPUID
# and so the programs' check report present).
try:
    with open("/proc/cpuinfo") as f:
        first = f.read().split("\n\n")[0] # the first processor
    info = {k.strip(): v.strip() for k, v in (l.split(":", 1) for l in first.splitlines() if ":" in l)}
    vendor, flags = info.get("vendor_id", ""), info.get("flags", "").split()
except OSError:
    vendor, flags = "", []
foreign_cpu = None
if vendor == "GenuineIntel":
    foreign_cpu = ("znver4", "sse4a")
elif vendor == "AuthenticAMD" and "avx512_fp16" not in flags:
    foreign_cpu = ("sapphirerapids", "avx512fp16")
if foreign_cpu:
    config.available_features.add("foreign-cpu")
    config.substitutions.append(("%foreign_cpu", foreign_cpu[0]))
    config.substitutions.append(("%foreign_feature", foreign_cpu[1]))

# A sanitizer build (scripts/sanitize.sh): tests that interpose malloc or
# time kernels say `UNSUPPORTED: sanitize`.
if getattr(config, "netc_sanitize", False):
    config.available_features.add("sanitize")

# Compilers for the C and C++ programs that use a model's C library
# (--emit=lib): warnings are errors; in a sanitizer build, instrumented like
# the core library they link.
if getattr(config, "netc_sanitize", False):
    sanitize = " -fsanitize=address,undefined -fno-sanitize-recover=undefined"
    config.substitutions.append(("%cc", "clang-19 -std=c11 -Wall -Wextra -Werror" + sanitize))
    config.substitutions.append(("%cxx", "clang++-19 -std=c++17 -Wall -Wextra -Werror" + sanitize))
else:
    config.substitutions.append(("%cc", "cc -std=c11 -Wall -Wextra -Werror"))
    config.substitutions.append(("%cxx", "c++ -std=c++17 -Wall -Wextra -Werror"))

# Lets a sanitizer build of netc link programs with an uninstrumented runtime.
if "NETC_RUNTIME_LIB" in os.environ:
    config.environment["NETC_RUNTIME_LIB"] = os.environ["NETC_RUNTIME_LIB"]

# The real MNIST digits, when scripts/get-mnist.py has installed them.
mnist_dir = os.path.join(config.netc_src_root, "data", "mnist")
if os.path.exists(os.path.join(mnist_dir, "train-images-idx3-ubyte")):
    config.available_features.add("mnist-data")
    config.substitutions.append(("%mnist_data", mnist_dir))

# rsvg-convert (Debian's librsvg2-bin) renders the SVG plots the tests check
# pixel by pixel.
import shutil
if shutil.which("rsvg-convert"):
    config.available_features.add("rsvg")

# Debian's python3-sklearn ships real tables (iris, digits, diabetes) as CSV.
sklearn_data = "/usr/lib/python3/dist-packages/sklearn/datasets/data"
if os.path.exists(os.path.join(sklearn_data, "iris.csv")):
    config.available_features.add("sklearn-data")
    config.substitutions.append(("%sklearn_data", sklearn_data))

# PyTorch (Debian's python3-torch, with /usr/bin/python3), for cross-checks.
import subprocess
try:
    if subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True,
                      timeout=120).returncode == 0:
        config.available_features.add("torch")
        config.substitutions.append(("%torch_python", "/usr/bin/python3"))
except (OSError, subprocess.TimeoutExpired):
    pass
try:
    if subprocess.run(["/usr/bin/python3", "-c", "import torchaudio"], capture_output=True,
                      timeout=120).returncode == 0:
        config.available_features.add("torchaudio")
except (OSError, subprocess.TimeoutExpired):
    pass

# Spoken digits: the Free Spoken Digit Dataset beside the project
# (../shared/data/fsdd), else a set espeak-ng and sox synthesise.
import shutil
fsdd = os.path.join(config.netc_src_root, "..", "shared", "data", "fsdd", "recordings")
if os.path.isdir(fsdd) or (shutil.which("espeak-ng") and shutil.which("sox")):
    config.available_features.add("spoken-digits")
else:
    lit_config.note("the spoken-digits tests are skipped: neither ../shared/data/fsdd nor "
                    "espeak-ng and sox (scripts/install-deps.sh installs them) are here")

# Open MPI's mpirun, for the data-parallel tests (netc --distributed), when
# this netc was built with MPI (libnetc_mpi.a beside the runtime). Ranks may
# outnumber the cores (--oversubscribe: 3 ranks on 2 cores); as root Open MPI
# wants its two confirmations.
netc_mpi_lib = os.path.join(os.path.dirname(config.netc_runtime), "libnetc_mpi.a")
if shutil.which("mpirun") and os.path.exists(netc_mpi_lib):
    config.available_features.add("mpi")
    mpirun = "mpirun --oversubscribe"
    if getattr(config, "netc_sanitize", False):
        # Open MPI keeps allocations to the end by design: its leaks are
        # suppressed, its plugins stay loaded so their frames have names,
        # and leak stacks are unwound in full (they run without frame
        # pointers).
        supp = os.path.join(config.netc_src_root, "test", "lsan-openmpi.supp")
        mpirun = ("env OMPI_MCA_mca_base_component_disable_dlclose=1 "
                  "LSAN_OPTIONS=suppressions=%s:fast_unwind_on_malloc=0 " % supp) + mpirun
    config.substitutions.append(("%mpirun", mpirun))
    if os.geteuid() == 0:
        config.environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        config.environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
else:
    lit_config.note("the MPI tests are skipped: " +
                    ("mpirun is not here (Debian openmpi-bin; scripts/install-deps.sh installs it)"
                     if not shutil.which("mpirun") else
                     "this netc was built without MPI (Debian libopenmpi-dev)"))
