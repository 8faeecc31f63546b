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

namespace astroedge {

// Compile-time string equality, so wrappers can static_assert that a port's dtype in the contract is the
// one their C++ signature assumes (a contract edit then stops the build instead of misreading buffers).
constexpr bool same_text(const char* a, const char* b) { return *a == *b && (*a == '\0' || same_text(a + 1, b + 1)); }

// Up to this many dims per port and symbols per op (contracts use at most 4 and 7).
constexpr int kMaxRank = 8;
constexpr int kMaxSymbols = 12;

// A resolved shape. Fixed capacity, no std::vector: the TensorRT library is built with hidden
// visibility, and std::vector<int64_t> instantiations would be exported from it.
struct Shape {
  int64_t d[kMaxRank] = {};
  int rank = 0;
};

// Values of a contract's dimension symbols; -1 = unknown (TensorRT's build-time wildcard).
class Symbols {
 public:
  Symbols(std::initializer_list<std::pair<const char*, int64_t>> values) {
    for (const auto& v : values)
      if (count_ < kMaxSymbols) values_[count_++] = v;
  }

  // The value of `name`; -1 when unknown or not bound.
  int64_t get(const char* name) const {
    for (int i = 0; i < count_; ++i)
      if (std::strcmp(values_[i].first, name) == 0) return values_[i].second;
    return -1;
  }

 private:
  std::pair<const char*, int64_t> values_[kMaxSymbols];
  int count_ = 0;
};

// The concrete dims of a port whose contract dims are `dims[0..rank)`.
inline Shape resolve(const char* const* dims, int rank, const Symbols& symbols) {
  Shape out;
  for (int i = 0; i < rank && i < kMaxRank; ++i) out.d[out.rank++] = symbols.get(dims[i]);
  return out;
}

inline std::string shape_str(const int64_t* dims, size_t rank) {
  std::string out = "[";
  for (size_t i = 0; i < rank; ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + "]";
}

inline std::string shape_str(const Shape& shape) { return shape_str(shape.d, static_cast<size_t>(shape.rank)); }

// Whether `got` matches `want` exactly (ONNX Runtime: every dim known).
inline bool shape_equals(const int64_t* got, size_t got_rank, const Shape& want) {
  if (got_rank != static_cast<size_t>(want.rank)) return false;
  for (size_t i = 0; i < got_rank; ++i)
    if (got[i] != want.d[i]) return false;
  return true;
}

// Whether `got` matches `want`; -1 on either side matches anything (dynamic dims at TensorRT build time).
inline bool shape_matches(const int64_t* got, size_t got_rank, const Shape& want) {
  if (got_rank != static_cast<size_t>(want.rank)) return false;
  for (size_t i = 0; i < got_rank; ++i)
    if (got[i] >= 0 && want.d[i] >= 0 && got[i] != want.d[i]) return false;
  return true;
}

}  // namespace astroedge

#endif  // ASTROEDGE_CONTRACT_SHAPES_H_
