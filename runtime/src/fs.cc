#include "fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.h"

namespace ae {
namespace {

std::string why(int err) { return std::strerror(err); }

// Reads exactly `size` bytes from fd (a regular file whose size was checked): a file that shrank
// meanwhile is an error, one that grew is read only up to `size` and then refused.
std::vector<uint8_t> read_exactly(int fd, uint64_t size, const std::string& shown) {
  std::vector<uint8_t> buf(size_t(size) + 1);  // +1: detects growth after fstat
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t r = ::read(fd, buf.data() + done, buf.size() - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(AE_ERR_IO, shown + ": read error (" + why(errno) + ")");
    if (r == 0) break;
    done += size_t(r);
  }
  if (done != size)
    throw Error(AE_ERR_IO, shown + ": changed while being read (" + std::to_string(done) + " bytes, expected " +
                               std::to_string(size) + "); retry");
  buf.resize(size_t(size));
  return buf;
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// fd must be a regular file: returns its size.
uint64_t regular_size(int fd, const std::string& shown) {
  struct stat st{};
  if (fstat(fd, &st) != 0) throw Error(AE_ERR_IO, shown + ": cannot stat (" + why(errno) + ")");
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISDIR(st.st_mode)                          ? "a folder"
                       : S_ISFIFO(st.st_mode)                       ? "a FIFO"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                    : "not a regular file";
    throw Error(AE_ERR_IO, shown + ": is " + std::string(kind) + "; only regular files are read");
  }
  // O_NONBLOCK was only there so that opening a FIFO cannot block; reads of a regular file ignore it.
  return uint64_t(st.st_size);
}

}  // namespace

bool plain_name(const std::string& name) {
  // astroedge/manifest.py NAME_PATTERN: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. It leaves no room for
  // "/", "\\", "..", a leading dot or a control character.
  auto word = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  };
  if (name.empty() || name.size() > 128 || !word(name[0])) return false;
  for (char c : name) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

PackageDir::PackageDir(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) {
    int err = errno;
    if (err == ENOENT)
      throw Error(AE_ERR_IO,
                  path + ": package directory not found; pass the *.aepkg directory written by 'astroedge export'");
    if (err == ENOTDIR)
      throw Error(AE_ERR_IO, path + ": not a directory; a package is a *.aepkg directory holding manifest.json");
    throw Error(AE_ERR_IO, path + ": cannot open the package directory (" + why(err) + ")");
  }
}

PackageDir::~PackageDir() {
  if (fd_ >= 0) ::close(fd_);
}

int PackageDir::open_member(const std::string& name) const {
  if (!plain_name(name))
    throw Error(AE_ERR_FORMAT, path(name) + ": not a plain file name inside the package; re-export the package");
  int fd = ::openat(fd_, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    if (err == ELOOP)
      throw Error(AE_ERR_IO,
                  path(name) + ": is a symbolic link; package files must be regular files inside the package");
    if (err == ENOENT)
      throw Error(AE_ERR_IO,
                  path(name) + ": missing from the package; copy the whole package directory or re-export it");
    throw Error(AE_ERR_IO, path(name) + ": cannot open (" + why(err) + ")");
  }
  return fd;
}

uint64_t PackageDir::size_of(const std::string& name) const {
  Fd f{open_member(name)};
  return regular_size(f.fd, path(name));
}

std::vector<uint8_t> PackageDir::read(const std::string& name, int64_t expected, uint64_t limit) const {
  Fd f{open_member(name)};
  std::string shown = path(name);
  uint64_t size = regular_size(f.fd, shown);
  if (expected >= 0 && size != uint64_t(expected)) {
    throw Error(AE_ERR_CHECKSUM, shown + ": " + std::to_string(size) + " bytes, manifest.json says " +
                                     std::to_string(expected) +
                                     " (truncated or changed); copy or re-export the package");
  }
  if (expected < 0 && size > limit) {
    throw Error(AE_ERR_FORMAT, shown + ": " + std::to_string(size) + " bytes, more than the " + std::to_string(limit) +
                                   " allowed; re-export the package");
  }
  return read_exactly(f.fd, size, shown);
}

std::vector<uint8_t> read_user_file(const std::string& path, uint64_t limit) {
  Fd f{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)};
  if (f.fd < 0) throw Error(AE_ERR_IO, path + ": cannot open (" + why(errno) + ")");
  uint64_t size = regular_size(f.fd, path);
  if (size > limit)
    throw Error(AE_ERR_FORMAT,
                path + ": " + std::to_string(size) + " bytes, more than the " + std::to_string(limit) + " expected");
  return read_exactly(f.fd, size, path);
}

void write_file_atomically(const std::string& path, const void* data, size_t size) {
  size_t slash = path.rfind('/');
  std::string folder = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw Error(AE_ERR_IO, path + ": is a folder; give a file path");
  std::string tmp = folder + "/.aestate.XXXXXX";
  std::vector<char> name(tmp.begin(), tmp.end());
  name.push_back('\0');
  int fd = mkstemp(name.data());
  if (fd < 0)
    throw Error(AE_ERR_IO, path + ": cannot create a temp file in " + folder + " (" + why(errno) +
                               "); choose an existing, writable folder");
  const auto* p = static_cast<const uint8_t*>(data);
  size_t done = 0;
  bool ok = true;
  while (ok && done < size) {
    ssize_t w = ::write(fd, p + done, size - done);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) done += size_t(w);
  }
  int err = ok ? 0 : errno;
  if (ok && fsync(fd) != 0) ok = false, err = errno;
  if (::close(fd) != 0 && ok) ok = false, err = errno;
  if (ok && chmod(name.data(), 0644) != 0)
    ok = false, err = errno;  // mkstemp makes 0600; a state file is ordinary data
  if (ok && rename(name.data(), path.c_str()) != 0) ok = false, err = errno;
  if (!ok) {
    unlink(name.data());
    throw Error(AE_ERR_IO, path + ": cannot write (" + why(err) + "); check the path and free space");
  }
}

}  // namespace ae
