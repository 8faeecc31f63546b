// Shape checks driven by the generated op-contract headers (amsu_contract.h, spikematmul_contract.h).
//
// Why: the wrappers (ONNX Runtime ops, TensorRT plugins) must not retype the contract's symbolic shapes
// ("[B, NH, HD, HD]"). Each wrapper binds the contract's symbols (B, S, D, ...) to values it read from
// the first input and the attributes, then resolves every port's dims from the generated tables and
// compares. Header-only, C++17, no ONNX Runtime or TensorRT types, so every wrapper can use it.
#ifndef ASTROEDGE_CONTRACT_SHAPES_H_
#define ASTROEDGE_CONTRACT_SHAPES_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace astroedge {

// Compile-time string equality, so wrappers can static_assert that a port's dtype in the contract is the
// one their C++ signature assumes (a contract edit then stops the build instead of misreading buffers).
constexpr bool same_text(const char* a, const char* b) { return *a == *b && (*a == '\0' || same_text(a + 1, b + 1)); }

// Values of a contract's dimension symbols; -1 = unknown (TensorRT's build-time wildcard).
class Symbols {
 public:
  Symbols(std::initializer_list<std::pair<const char*, int64_t>> values) : values_(values) {}

  // The value of `name`; -1 when unknown or not bound (an unbound symbol is a wrapper bug and is
  // reported by resolve as a mismatch-free wildcard only if the caller allows unknowns).
  int64_t get(const char* name) const {
    for (const auto& v : values_)
      if (std::strcmp(v.first, name) == 0) return v.second;
    return -1;
  }

 private:
  std::vector<std::pair<const char*, int64_t>> values_;
};

// The concrete dims of a port whose contract dims are `dims[0..rank)`.
inline std::vector<int64_t> resolve(const char* const* dims, int rank, const Symbols& symbols) {
  std::vector<int64_t> out;
  for (int i = 0; i < rank; ++i) out.push_back(symbols.get(dims[i]));
  return out;
}

inline std::string shape_str(const int64_t* dims, size_t rank) {
  std::string out = "[";
  for (size_t i = 0; i < rank; ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + "]";
}

inline std::string shape_str(const std::vector<int64_t>& shape) { return shape_str(shape.data(), shape.size()); }

// Whether `got` matches `want`; -1 on either side matches anything (dynamic dims at TensorRT build time).
inline bool shape_matches(const int64_t* got, size_t got_rank, const std::vector<int64_t>& want) {
  if (got_rank != want.size()) return false;
  for (size_t i = 0; i < got_rank; ++i)
    if (got[i] >= 0 && want[i] >= 0 && got[i] != want[i]) return false;
  return true;
}

}  // namespace astroedge

#endif  // ASTROEDGE_CONTRACT_SHAPES_H_
