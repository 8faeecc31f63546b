// A small JSON reader (RFC 8259) for manifest.json: values, objects, arrays, strings with \u escapes,
// numbers as double (plus whether they were written as integers). Enough for a manifest of a few kilobytes; it is not a
// general-purpose library.
#ifndef ASTROEDGE_RUNTIME_JSON_H_
#define ASTROEDGE_RUNTIME_JSON_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ae {

struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0.0;
  bool integral = false;  // a number written without fraction or exponent ("2", not "2.0" or "2e0")
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  // Member lookup: nullptr when this is not an object or has no such key.
  const Json* find(const std::string& key) const;
  bool is_integer() const;  // a number written as an integer, within +-2^53
};

// Strict JSON as the Python owner of the format reads it (astroedge/manifest.py parse_json): valid
// UTF-8, at most 16 levels deep, no duplicate keys, finite numbers. Throws std::runtime_error
// ("line L column C: what" or "not UTF-8 text (byte N)") on anything else.
Json parse_json(const std::string& text, int max_depth = 16);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_JSON_H_
