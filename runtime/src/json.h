// A small JSON reader (RFC 8259) for manifest.json: values, objects, arrays, strings with \u escapes,
// numbers as double. Enough for a manifest of a few kilobytes; it is not a general-purpose library.
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
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  // Member lookup: nullptr when this is not an object or has no such key.
  const Json* find(const std::string& key) const;
  bool is_integer() const;  // a number with no fractional part within int64 range
};

// Parses `text`; throws std::runtime_error("line L column C: what") on malformed input.
Json parse_json(const std::string& text);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_JSON_H_
