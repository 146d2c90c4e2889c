#include "probe.hpp"

#include <cstdio>
#include <cstring>
#include <string>

namespace quasar {

namespace {

bool starts(const uint8_t* d, size_t n, const char* sig, size_t len) { return n >= len && std::memcmp(d, sig, len) == 0; }

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
uint32_t le32(const uint8_t* p) { return uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]; }
uint16_t le16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }

bool is_sof(int m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

// The frame size libjpeg will use (see quasar/io/formats.py _jpeg_size).
bool jpeg_size(const uint8_t* b, size_t n, long long& w, long long& h) {
    if (n < 2 || b[0] != 0xFF || b[1] != 0xD8) return false;
    size_t i = 2;
    while (true) {
        const void* f = i < n ? std::memchr(b + i, 0xFF, n - i) : nullptr;
        if (!f) return false;
        i = size_t(static_cast<const uint8_t*>(f) - b);
        while (i < n && b[i] == 0xFF) ++i;
        if (i >= n) return false;
        int marker = b[i++];
        if (marker == 0x00) continue;
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
        if (marker == 0xD8 || marker == 0xD9 || marker == 0xDA) return false;
        if (i + 2 > n) return false;
        size_t seglen = size_t(b[i]) << 8 | b[i + 1];
        if (is_sof(marker)) {
            if (i + 7 > n) return false;
            h = (b[i + 3] << 8) | b[i + 4];
            w = (b[i + 5] << 8) | b[i + 6];
            return true;
        }
        if (seglen < 2) return false;
        i += seglen;
    }
}

bool png_size(const uint8_t* b, size_t n, long long& w, long long& h) {
    if (n < 24 || std::memcmp(b + 12, "IHDR", 4) != 0) return false;
    w = be32(b + 16);
    h = be32(b + 20);
    return true;
}

bool gif_size(const uint8_t* b, size_t n, long long& w, long long& h) {
    if (n < 10) return false;
    w = le16(b + 6);
    h = le16(b + 8);
    return true;
}

bool webp_size(const uint8_t* b, size_t n, long long& w, long long& h) {
    if (n < 16) return false;
    if (std::memcmp(b + 12, "VP8X", 4) == 0) {
        if (n < 30) return false;
        w = 1 + (b[24] | b[25] << 8 | b[26] << 16);
        h = 1 + (b[27] | b[28] << 8 | b[29] << 16);
        return true;
    }
    if (std::memcmp(b + 12, "VP8L", 4) == 0) {
        if (n < 25 || b[20] != 0x2F) return false;
        uint32_t bits = le32(b + 21);
        w = 1 + (bits & 0x3FFF);
        h = 1 + ((bits >> 14) & 0x3FFF);
        return true;
    }
    if (std::memcmp(b + 12, "VP8 ", 4) == 0) {
        if (n < 30 || b[23] != 0x9D || b[24] != 0x01 || b[25] != 0x2A) return false;
        w = le16(b + 26) & 0x3FFF;
        h = le16(b + 28) & 0x3FFF;
        return true;
    }
    return false;
}

bool bmp_size(const uint8_t* b, size_t n, long long& w, long long& h) {
    if (n < 18) return false;
    uint32_t dib = le32(b + 14);
    if (dib == 12) {
        if (n < 22) return false;
        w = le16(b + 18);
        h = le16(b + 20);
        return true;
    }
    if (dib >= 40) {
        if (n < 26) return false;
        int32_t sw = int32_t(le32(b + 18)), sh = int32_t(le32(b + 22));
        w = sw < 0 ? -(long long)sw : sw;
        h = sh < 0 ? -(long long)sh : sh;
        return true;
    }
    return false;
}

bool tiff_size(const uint8_t* b, size_t n, long long& w, long long& h) {
    auto tags = read_tiff_ifd0(b, n);
    if (tags.count(256) && tags.count(257)) {
        w = tags[256];
        h = tags[257];
        return true;
    }
    return false;
}

// Radiance HDR: header lines, an empty line, then e.g. "-Y 768 +X 512" (height first).
bool hdr_size(const uint8_t* b, size_t n, long long& w, long long& h) {
    std::string head(reinterpret_cast<const char*>(b), std::min<size_t>(n, 1 << 16));
    size_t end = head.find("\n\n");
    if (end == std::string::npos) return false;
    // [-+][XY] +digits +[-+][XY] +digits, at the start of the line after the header
    size_t i = end + 2;
    char axis[2];
    long long v[2];
    for (int k = 0; k < 2; ++k) {
        if (i + 1 >= head.size() || (head[i] != '-' && head[i] != '+') || (head[i + 1] != 'X' && head[i + 1] != 'Y')) return false;
        axis[k] = head[i + 1];
        i += 2;
        if (i >= head.size() || head[i] != ' ') return false;
        while (i < head.size() && head[i] == ' ') ++i;
        if (i >= head.size() || !std::isdigit(uint8_t(head[i]))) return false;
        long long x = 0;
        while (i < head.size() && std::isdigit(uint8_t(head[i]))) {
            x = x * 10 + (head[i++] - '0');
            if (x > (1LL << 40)) x = 1LL << 40;
        }
        v[k] = x;
        if (k == 0) {
            if (i >= head.size() || head[i] != ' ') return false;
            while (i < head.size() && head[i] == ' ') ++i;
        }
    }
    if (axis[0] == axis[1]) return false;
    if (axis[0] == 'Y') {
        w = v[1];
        h = v[0];
    } else {
        w = v[0];
        h = v[1];
    }
    return true;
}

// Netpbm (P1-P6): magic, then width and height as decimal text, comments allowed. Pillow reads
// these headers in the Python runtime; here the size is read the same way before decoding.
bool pnm_size(const uint8_t* b, size_t n, long long& w, long long& h) {
    if (n < 3 || b[0] != 'P' || b[1] < '1' || b[1] > '6') return false;
    size_t i = 2;
    long long v[2];
    for (int k = 0; k < 2; ++k) {
        while (i < n) {
            if (b[i] == '#') {
                while (i < n && b[i] != '\n' && b[i] != '\r') ++i;
            } else if (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r' || b[i] == '\v' || b[i] == '\f') {
                ++i;
            } else {
                break;
            }
        }
        if (i >= n || b[i] < '0' || b[i] > '9') return false;
        long long x = 0;
        while (i < n && b[i] >= '0' && b[i] <= '9') {
            x = x * 10 + (b[i++] - '0');
            if (x > (1LL << 40)) return false;
        }
        v[k] = x;
    }
    w = v[0];
    h = v[1];
    return true;
}

}  // namespace

std::string sniff(const uint8_t* d, size_t n) {
    if (starts(d, n, "\xff\xd8\xff", 3)) return "jpeg";
    if (starts(d, n, "\x89PNG\r\n\x1a\n", 8)) return "png";
    if (starts(d, n, "GIF87a", 6) || starts(d, n, "GIF89a", 6)) return "gif";
    if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) return "webp";
    if (starts(d, n, "BM", 2)) return "bmp";
    if (starts(d, n, "II*\x00", 4) || starts(d, n, "MM\x00*", 4) || starts(d, n, "II+\x00", 4) || starts(d, n, "MM\x00+", 4))
        return "tiff";
    if (starts(d, n, "#?RADIANCE", 10) || starts(d, n, "#?RGBE", 6)) return "hdr";
    return "";
}

Header probe(const uint8_t* d, size_t n) {
    Header hd;
    hd.format = sniff(d, n);
    long long w = 0, h = 0;
    bool ok = false;
    const std::string& f = hd.format;
    if (f == "jpeg") ok = jpeg_size(d, n, w, h);
    else if (f == "png") ok = png_size(d, n, w, h);
    else if (f == "gif") ok = gif_size(d, n, w, h);
    else if (f == "webp") ok = webp_size(d, n, w, h);
    else if (f == "bmp") ok = bmp_size(d, n, w, h);
    else if (f == "tiff") ok = tiff_size(d, n, w, h);
    else if (f == "hdr") ok = hdr_size(d, n, w, h);
    else ok = pnm_size(d, n, w, h);
    if (ok) {
        hd.has_size = true;
        hd.width = w;
        hd.height = h;
    }
    return hd;
}

bool jpeg_has_eoi(const uint8_t* d, size_t n) {
    for (size_t i = 0; i + 1 < n; ++i)
        if (d[i] == 0xFF && d[i + 1] == 0xDA) {
            for (size_t j = i + 2; j + 1 < n; ++j)
                if (d[j] == 0xFF && d[j + 1] == 0xD9) return true;
            return false;
        }
    return false;
}

std::map<int, long long> read_tiff_ifd0(const uint8_t* blob, size_t n) {
    std::map<int, long long> tags;
    if (n >= 6 && std::memcmp(blob, "Exif\0\0", 6) == 0) {
        blob += 6;
        n -= 6;
    }
    if (n < 8) return tags;
    bool little;
    if (blob[0] == 'I' && blob[1] == 'I') little = true;
    else if (blob[0] == 'M' && blob[1] == 'M') little = false;
    else return tags;
    auto rd = [&](size_t off, size_t size, uint64_t& v) {
        if (off + size > n || off + size < off) return false;
        v = 0;
        for (size_t k = 0; k < size; ++k) {
            uint64_t byte = blob[off + k];
            v |= little ? byte << (8 * k) : byte << (8 * (size - 1 - k));
        }
        return true;
    };
    uint64_t magic = 0, offset = 0;
    if (!rd(2, 2, magic)) return tags;
    size_t csize, entry, slot, hoff;  // count field size, entry size, value slot size, offset of the slot
    if (magic == 42) {
        if (!rd(4, 4, offset)) return tags;
        csize = 2; entry = 12; slot = 4; hoff = 8;
    } else if (magic == 43) {
        uint64_t a, b2;
        if (!rd(4, 2, a) || !rd(6, 2, b2) || a != 8 || b2 != 0 || !rd(8, 8, offset)) return tags;
        csize = 8; entry = 20; slot = 8; hoff = 12;
    } else {
        return tags;
    }
    uint64_t count = 0;
    if (offset > n || !rd(size_t(offset), csize, count)) return tags;
    for (uint64_t k = 0; k < std::min<uint64_t>(count, 512); ++k) {
        size_t start = size_t(offset) + csize + entry * size_t(k);
        uint64_t tag = 0, typ = 0, cnt = 0;
        if (start + entry > n) break;
        rd(start, 2, tag);
        rd(start + 2, 2, typ);
        rd(start + 4, hoff - 4, cnt);
        size_t size = 0;
        bool is_signed = false;
        switch (typ) {
            case 1: size = 1; break;
            case 3: size = 2; break;
            case 4: size = 4; break;
            case 6: size = 1; is_signed = true; break;
            case 8: size = 2; is_signed = true; break;
            case 9: size = 4; is_signed = true; break;
            case 16: size = 8; break;
            case 17: size = 8; is_signed = true; break;
            default: break;
        }
        if (!size || cnt != 1 || size > slot) continue;
        uint64_t v = 0;
        rd(start + hoff, size, v);
        long long sv = (long long)v;
        if (is_signed && size < 8 && (v >> (8 * size - 1)) & 1) sv = (long long)v - (1LL << (8 * size));
        tags[int(tag)] = sv;
    }
    return tags;
}

int exif_orientation(const std::string& blob) {
    if (blob.empty()) return 1;
    auto tags = read_tiff_ifd0(reinterpret_cast<const uint8_t*>(blob.data()), blob.size());
    auto it = tags.find(0x0112);
    long long v = it == tags.end() ? 1 : it->second;
    return v >= 1 && v <= 8 ? int(v) : 1;
}

std::string exif_blob(const std::string& format, const uint8_t* d, size_t n) {
    if (format == "png") {
        size_t i = 8;
        while (i + 8 <= n) {
            uint32_t len = be32(d + i);
            const uint8_t* type = d + i + 4;
            if (i + 12 + size_t(len) > n) break;
            if (std::memcmp(type, "eXIf", 4) == 0) return std::string(reinterpret_cast<const char*>(d + i + 8), len);
            if (std::memcmp(type, "IDAT", 4) == 0 || std::memcmp(type, "IEND", 4) == 0) break;  // libpng reads eXIf before the image
            i += 12 + size_t(len);
        }
    } else if (format == "webp") {
        size_t i = 12;
        while (i + 8 <= n) {
            uint32_t len = le32(d + i + 4);
            if (i + 8 + size_t(len) > n) break;
            if (std::memcmp(d + i, "EXIF", 4) == 0) return std::string(reinterpret_cast<const char*>(d + i + 8), len);
            i += 8 + size_t(len) + (len & 1);
        }
    }
    return "";
}

std::string py_bytes_repr(const uint8_t* d, size_t n) {
    bool single = false, dbl = false;
    for (size_t i = 0; i < n; ++i) {
        single |= d[i] == '\'';
        dbl |= d[i] == '"';
    }
    char q = (single && !dbl) ? '"' : '\'';
    std::string out = "b";
    out += q;
    for (size_t i = 0; i < n; ++i) {
        uint8_t c = d[i];
        char buf[8];
        if (c == q || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c == '\t') out += "\\t";
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c < 0x20 || c >= 0x7f) {
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else out += char(c);
    }
    out += q;
    return out;
}

}  // namespace quasar
