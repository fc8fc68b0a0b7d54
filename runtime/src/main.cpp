// main.cpp - the emitted program's main(). Kept in its own object so a
// program with its own main() does not pull it from the archive.
#include "netc/runtime.h"

int main(int argc, char **argv) { return netc_main(argc, argv); }
