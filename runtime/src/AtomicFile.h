// AtomicFile.h - writing a file so that a reader only ever sees the old
// content or the whole new one, and nobody else's file is touched.
//
// The new content goes to a temporary file created exclusively beside the
// target (O_CREAT|O_EXCL|O_NOFOLLOW, a random name: no planted symlink or
// second writer can redirect or share it), is fsynced and closed (every
// error checked), then renamed over the target, and the directory is
// fsynced. A target that exists and is not a regular file (a device, a
// folder, a symlink) is refused. On any error the temporary file is
// removed and Error thrown; the target is untouched.
#pragma once

#include <functional>
#include <string>

namespace netc::rt {

/// Writes `path` atomically; `write(fd)` writes the content to the open
/// temporary file (with writeAll, say).
void writeFileAtomically(const std::string &path, const std::function<void(int fd)> &write);

/// Writes all `size` bytes to `fd` or throws Error naming `path`.
void writeAll(int fd, const void *data, size_t size, const std::string &path);

} // namespace netc::rt
