// Opening files without being fooled: package members are opened relative to the package folder's
// descriptor (openat) with O_NOFOLLOW, so no symlink, `..` or absolute path can lead outside it;
// every file is fstat'ed and must be a regular file (a FIFO or /dev/zero would block or never end),
// and its size is checked against the expected size or a limit BEFORE anything is allocated.
#ifndef ASTROEDGE_RUNTIME_FS_H_
#define ASTROEDGE_RUNTIME_FS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace ae {

// A plain file name: [A-Za-z0-9_][A-Za-z0-9._-]{0,127} (so no '/', '\\', '..', leading dot).
bool plain_name(const std::string& name);

// A package folder, opened once; members are read relative to it.
class PackageDir {
 public:
  explicit PackageDir(const std::string& path);  // throws AE_ERR_IO if it is not a folder
  ~PackageDir();
  PackageDir(const PackageDir&) = delete;
  PackageDir& operator=(const PackageDir&) = delete;
  const std::string& path() const { return path_; }
  std::string path(const std::string& name) const { return path_ + "/" + name; }
  // Size of member `name` (a plain regular file, not a symlink); throws AE_ERR_IO otherwise.
  uint64_t size_of(const std::string& name) const;
  // The whole member. `expected` >= 0: its size must be exactly that (AE_ERR_CHECKSUM otherwise);
  // else at most `limit` bytes (AE_ERR_FORMAT otherwise). Checked before allocation.
  std::vector<uint8_t> read(const std::string& name, int64_t expected, uint64_t limit) const;

 private:
  int open_member(const std::string& name) const;
  std::string path_;
  int fd_ = -1;
};

// A file the user named (a state file): regular files only (symlinks to them are fine), at most
// `limit` bytes, else AE_ERR_IO / AE_ERR_FORMAT naming `path`.
std::vector<uint8_t> read_user_file(const std::string& path, uint64_t limit);

// Writes `data` to a temp file beside `path`, fsyncs it and renames it over `path` (mode 0644).
void write_file_atomically(const std::string& path, const void* data, size_t size);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_FS_H_
