// A small JSON reader (RFC 8259 plus Python's NaN/Infinity literals), enough for the model metadata.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace quasar {

struct Json {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    bool b = false;
    double num = 0.0;
    bool is_int = false;  // written without fraction or exponent (Python parses it as an int)
    std::string str;
    std::vector<Json> arr;
    std::vector<std::pair<std::string, Json>> obj;  // in file order; duplicate keys: last wins in find()

    const Json* find(const std::string& key) const;
    bool is_number() const { return kind == Number; }
};

// Parses ``text``; on failure returns false with ``err`` set (a short reason).
bool parse_json(const std::string& text, Json& out, std::string& err);

// Python's repr() of a str (single quotes unless the text has ' and no ").
std::string py_repr(const std::string& s);
// Python's repr() of a parsed JSON value as json.loads would give it (lists, dicts, strings, numbers).
std::string py_repr(const Json& v);
// Python's repr() of a float (shortest round-trip digits, "1e-05" style exponents, ".0" for integers).
std::string py_float_repr(double v);

}  // namespace quasar
