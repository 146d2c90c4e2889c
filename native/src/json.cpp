#include "json.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace quasar {

const Json* Json::find(const std::string& key) const {
    const Json* hit = nullptr;
    for (const auto& kv : obj)
        if (kv.first == key) hit = &kv.second;
    return hit;
}

namespace {

constexpr int kMaxDepth = 200;

struct Parser {
    const std::string& s;
    size_t i = 0;
    std::string err;

    void ws() {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
    }
    bool fail(const char* why) {
        if (err.empty()) err = std::string(why) + " at char " + std::to_string(i);
        return false;
    }
    bool lit(const char* word) {
        size_t n = std::strlen(word);
        if (s.compare(i, n, word) == 0) {
            i += n;
            return true;
        }
        return false;
    }
    static void put_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += char(cp);
        } else if (cp < 0x800) {
            out += char(0xC0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += char(0xE0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        } else {
            out += char(0xF0 | (cp >> 18));
            out += char(0x80 | ((cp >> 12) & 0x3F));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
        }
    }
    bool hex4(unsigned& v) {
        if (i + 4 > s.size()) return fail("truncated \\u escape");
        v = 0;
        for (int k = 0; k < 4; ++k) {
            char c = s[i++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= unsigned(c - '0');
            else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
            else return fail("bad \\u escape");
        }
        return true;
    }
    bool string(std::string& out) {
        ++i;  // opening quote
        while (true) {
            if (i >= s.size()) return fail("unterminated string");
            char c = s[i++];
            if (c == '"') return true;
            if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i >= s.size()) return fail("unterminated string");
            char e = s[i++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned cp = 0;
                    if (!hex4(cp)) return false;
                    if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < s.size() && s[i] == '\\' && s[i + 1] == 'u') {
                        size_t save = i;
                        i += 2;
                        unsigned lo = 0;
                        if (!hex4(lo)) return false;
                        if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        else i = save;
                    }
                    put_utf8(out, cp);  // a lone surrogate is kept as its (invalid) 3-byte form
                    break;
                }
                default: return fail("bad escape");
            }
        }
    }
    bool number(Json& v) {
        size_t start = i;
        if (s[i] == '-') ++i;
        if (i < s.size() && s[i] == 'I') {  // -Infinity
            if (!lit("Infinity")) return fail("bad number");
            v.kind = Json::Number;
            v.num = -std::numeric_limits<double>::infinity();
            return true;
        }
        if (i >= s.size() || !(s[i] >= '0' && s[i] <= '9')) return fail("bad number");
        if (s[i] == '0') ++i;
        else while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        bool integer = true;
        if (i < s.size() && s[i] == '.') {
            integer = false;
            ++i;
            if (i >= s.size() || !(s[i] >= '0' && s[i] <= '9')) return fail("bad number");
            while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        }
        if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
            integer = false;
            ++i;
            if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
            if (i >= s.size() || !(s[i] >= '0' && s[i] <= '9')) return fail("bad number");
            while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        }
        v.kind = Json::Number;
        v.is_int = integer;
        v.num = std::strtod(s.substr(start, i - start).c_str(), nullptr);
        return true;
    }
    bool value(Json& v, int depth) {
        if (depth > kMaxDepth) return fail("nested too deeply");
        ws();
        if (i >= s.size()) return fail("unexpected end");
        char c = s[i];
        if (c == '{') {
            ++i;
            v.kind = Json::Object;
            ws();
            if (i < s.size() && s[i] == '}') { ++i; return true; }
            while (true) {
                ws();
                if (i >= s.size() || s[i] != '"') return fail("expected a key");
                std::string key;
                if (!string(key)) return false;
                ws();
                if (i >= s.size() || s[i] != ':') return fail("expected ':'");
                ++i;
                Json item;
                if (!value(item, depth + 1)) return false;
                v.obj.emplace_back(std::move(key), std::move(item));
                ws();
                if (i < s.size() && s[i] == ',') { ++i; continue; }
                if (i < s.size() && s[i] == '}') { ++i; return true; }
                return fail("expected ',' or '}'");
            }
        }
        if (c == '[') {
            ++i;
            v.kind = Json::Array;
            ws();
            if (i < s.size() && s[i] == ']') { ++i; return true; }
            while (true) {
                Json item;
                if (!value(item, depth + 1)) return false;
                v.arr.push_back(std::move(item));
                ws();
                if (i < s.size() && s[i] == ',') { ++i; continue; }
                if (i < s.size() && s[i] == ']') { ++i; return true; }
                return fail("expected ',' or ']'");
            }
        }
        if (c == '"') {
            v.kind = Json::String;
            return string(v.str);
        }
        if (lit("true")) { v.kind = Json::Bool; v.b = true; return true; }
        if (lit("false")) { v.kind = Json::Bool; v.b = false; return true; }
        if (lit("null")) { v.kind = Json::Null; return true; }
        if (lit("NaN")) { v.kind = Json::Number; v.num = std::nan(""); return true; }
        if (lit("Infinity")) { v.kind = Json::Number; v.num = std::numeric_limits<double>::infinity(); return true; }
        if (c == '-' || (c >= '0' && c <= '9')) return number(v);
        return fail("unexpected character");
    }
};

}  // namespace

bool parse_json(const std::string& text, Json& out, std::string& err) {
    Parser p{text, 0, {}};
    out = Json();
    if (!p.value(out, 0)) {
        err = p.err;
        return false;
    }
    p.ws();
    if (p.i != text.size()) {
        err = "extra data at char " + std::to_string(p.i);
        return false;
    }
    return true;
}

std::string py_repr(const std::string& s) {
    bool single = s.find('\'') != std::string::npos, dbl = s.find('"') != std::string::npos;
    char q = (single && !dbl) ? '"' : '\'';
    std::string out(1, q);
    for (unsigned char c : s) {
        if (c == q || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else out += char(c);
    }
    return out + q;
}

std::string py_float_repr(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
    char buf[64];
    int prec = 1;
    for (; prec <= 17; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    // buf: [-]d.ddde[+-]XX ; digits and exponent
    std::string t(buf);
    bool neg = t[0] == '-';
    if (neg) t.erase(0, 1);
    size_t e = t.find('e');
    int exp = std::atoi(t.c_str() + e + 1);
    std::string digits;
    for (size_t k = 0; k < e; ++k)
        if (t[k] != '.') digits += t[k];
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    std::string out;
    if (exp >= -4 && exp < 16) {  // Python's repr: fixed notation for 1e-4 <= |v| < 1e16
        if (exp < 0) {
            out = "0." + std::string(size_t(-exp - 1), '0') + digits;
        } else if (size_t(exp + 1) >= digits.size()) {
            out = digits + std::string(size_t(exp + 1) - digits.size(), '0') + ".0";
        } else {
            out = digits.substr(0, size_t(exp + 1)) + "." + digits.substr(size_t(exp + 1));
        }
        return (neg ? "-" : "") + out;
    }
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    std::snprintf(buf, sizeof buf, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    return (neg ? "-" : "") + out + buf;
}

std::string py_repr(const Json& v) {
    switch (v.kind) {
        case Json::Null: return "None";
        case Json::Bool: return v.b ? "True" : "False";
        case Json::Number:
            if (v.is_int && std::fabs(v.num) < 9.007199254740992e15) {
                char buf[32];
                std::snprintf(buf, sizeof buf, "%.0f", v.num);
                return buf;
            }
            return py_float_repr(v.num);
        case Json::String: return py_repr(v.str);
        case Json::Array: {
            std::string out = "[";
            for (size_t k = 0; k < v.arr.size(); ++k) out += (k ? ", " : "") + py_repr(v.arr[k]);
            return out + "]";
        }
        case Json::Object: {
            std::string out = "{";
            for (size_t k = 0; k < v.obj.size(); ++k)
                out += (k ? ", " : "") + py_repr(v.obj[k].first) + ": " + py_repr(v.obj[k].second);
            return out + "}";
        }
    }
    return "";
}

}  // namespace quasar
