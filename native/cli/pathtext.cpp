#include "pathtext.hpp"

#include <unistd.h>

#include <cstdio>
#include <vector>

namespace quasar_cli {

namespace {

// Length of the valid UTF-8 sequence starting at s[i] (as Python's strict decoder accepts it), or 0.
size_t utf8_len(const std::string& s, size_t i) {
    const uint8_t c = uint8_t(s[i]);
    if (c < 0x80) return 1;
    size_t len = (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (!len || i + len > s.size()) return 0;
    for (size_t k = 1; k < len; ++k) {
        uint8_t d = uint8_t(s[i + k]), lo = 0x80, hi = 0xBF;
        if (k == 1) {
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;  // no surrogates
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        }
        if (d < lo || d > hi) return 0;
    }
    return len;
}

void hex_escape(std::string& out, uint8_t b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", b);
    out += buf;
}

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::string encode_text(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        uint8_t c = uint8_t(s[i]);
        size_t len = utf8_len(s, i);
        if (len == 0) {
            hex_escape(out, c);
            ++i;
        } else if (len == 1) {
            if (c == '\\') out += "\\\\";
            else if (c < 0x20 || c == 0x7f) hex_escape(out, c);
            else out += char(c);
            ++i;
        } else {
            out.append(s, i, len);
            i += len;
        }
    }
    return out;
}

std::string decode_text(const std::string& t) {
    if (t.find('\\') == std::string::npos) return t;
    std::string out;
    for (size_t i = 0; i < t.size(); ++i) {
        if (t[i] == '\\' && i + 1 < t.size()) {
            if (t[i + 1] == '\\') {
                out += '\\';
                ++i;
                continue;
            }
            if (t[i + 1] == 'x' && i + 3 < t.size() && hexval(t[i + 2]) >= 0 && hexval(t[i + 3]) >= 0) {
                out += char(hexval(t[i + 2]) * 16 + hexval(t[i + 3]));
                i += 3;
                continue;
            }
        }
        out += t[i];
    }
    return out;
}

std::string normpath(const std::string& p) {
    if (p.empty()) return ".";
    size_t initial = 0;
    while (initial < p.size() && p[initial] == '/') ++initial;
    if (initial > 2) initial = 1;  // POSIX allows exactly two leading slashes to mean something else
    std::vector<std::string> comps;
    size_t i = 0;
    while (i <= p.size()) {
        size_t j = p.find('/', i);
        if (j == std::string::npos) j = p.size();
        std::string c = p.substr(i, j - i);
        if (!c.empty() && c != ".") {
            if (c != ".." || (!initial && comps.empty()) || (!comps.empty() && comps.back() == "..")) comps.push_back(c);
            else if (!comps.empty()) comps.pop_back();
        }
        i = j + 1;
    }
    std::string out(initial, '/');
    for (size_t k = 0; k < comps.size(); ++k) out += (k ? "/" : "") + comps[k];
    return out.empty() ? "." : out;
}

std::string abspath(const std::string& p) {
    if (!p.empty() && p[0] == '/') return normpath(p);
    std::vector<char> buf(4096);
    while (!::getcwd(buf.data(), buf.size())) buf.resize(buf.size() * 2);
    return normpath(path_join(buf.data(), p));
}

std::string path_join(const std::string& dir, const std::string& name) {
    if (!name.empty() && name[0] == '/') return name;
    if (dir.empty() || dir.back() == '/') return dir + name;
    return dir + "/" + name;
}

std::string resume_key(const std::string& path) {
    if (path.size() >= 2 && path.front() == '<' && path.back() == '>') return path;
    return abspath(path);
}

std::string csv_cell(const std::string& text) {
    if (!text.empty() && std::string("=+-@\t\r'").find(text[0]) != std::string::npos) return "'" + text;
    return text;
}

std::string csv_uncell(const std::string& cell) { return !cell.empty() && cell[0] == '\'' ? cell.substr(1) : cell; }

}  // namespace quasar_cli
