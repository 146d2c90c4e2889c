#include "onnx_reader.hpp"

#include "varint.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace quasar {

const std::map<int, std::string> kDtypeNames = {
    {1, "float32"}, {2, "uint8"},   {3, "int8"},    {4, "uint16"},  {5, "int16"},  {6, "int32"},  {7, "int64"},
    {8, "string"},  {9, "bool"},    {10, "float16"}, {11, "float64"}, {12, "uint32"}, {13, "uint64"}, {16, "bfloat16"}};

size_t dtype_size(int t) {
    switch (t) {
        case 1: case 6: case 12: return 4;
        case 2: case 3: case 9: return 1;
        case 4: case 5: case 10: case 16: return 2;
        case 7: case 11: case 13: return 8;
        default: return 0;
    }
}

uint64_t read_varint(const std::string& b, size_t& i, size_t end) {
    uint64_t v = 0;
    switch (decode_varint([&]() -> int { return i < end ? int(uint8_t(b[i++])) : -1; }, v)) {
        case VarintRead::Ok: return v;
        case VarintRead::TooLong: throw NotOnnx("varint too long");
        default: throw NotOnnx("truncated varint");
    }
}

namespace {

constexpr int kMetadataProps = 14, kGraph = 7, kInitializer = 5, kGraphInput = 11, kGraphOutput = 12;
constexpr size_t kMaxNameBytes = 4096;
constexpr uint64_t kMaxHeadTensorBytes = 256ull << 20;

struct Reader {
    const std::string& b;
    size_t pos, end;
    Reader(const std::string& bytes, size_t start, size_t stop) : b(bytes), pos(start), end(stop) {}
    bool done() const { return pos >= end; }
    // false on a clean end (no byte at all)
    bool varint(uint64_t& v, bool& clean_end) {
        clean_end = pos >= end;
        if (clean_end) return false;
        v = read_varint(b, pos, end);
        return true;
    }
};

// UTF-8 with invalid sequences replaced by U+FFFD (Python's errors="replace").
std::string utf8_replace(const std::string& s) {
    std::string out;
    size_t i = 0, n = s.size();
    while (i < n) {
        uint8_t c = uint8_t(s[i]);
        int len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (len == 1) { out += char(c); ++i; continue; }
        size_t k = 1;
        bool ok = len > 0;
        if (ok) {
            for (; k < size_t(len); ++k) {
                if (i + k >= n) { ok = false; break; }
                uint8_t d = uint8_t(s[i + k]);
                uint8_t lo = 0x80, hi = 0xBF;
                if (k == 1) {
                    if (c == 0xE0) lo = 0xA0;
                    if (c == 0xED) hi = 0x9F;
                    if (c == 0xF0) lo = 0x90;
                    if (c == 0xF4) hi = 0x8F;
                }
                if (d < lo || d > hi) { ok = false; break; }
            }
        }
        if (ok) {
            out.append(s, i, size_t(len));
            i += size_t(len);
        } else {
            out += "\xEF\xBF\xBD";
            i += std::max<size_t>(1, k);
        }
    }
    return out;
}

std::pair<std::string, std::string> entry(const std::string& buf) {
    std::string key, value;
    size_t i = 0;
    while (i < buf.size()) {
        uint64_t tag = read_varint(buf, i, buf.size());
        if ((tag & 7) != 2) throw NotOnnx("unexpected field type in a metadata entry");
        uint64_t n = read_varint(buf, i, buf.size());
        size_t take = size_t(std::min<uint64_t>(n, buf.size() - i));
        std::string s = utf8_replace(buf.substr(i, take));
        i += take;
        if ((tag >> 3) == 1) key = s;
        else if ((tag >> 3) == 2) value = s;
    }
    return {key, value};
}

void check_metadata_entry(uint64_t n, size_t count) {
    if (n > kMaxMetadataValueBytes)
        throw MetadataTooLarge("a metadata entry of " + std::to_string(n) + " bytes is over the " +
                               std::to_string(kMaxMetadataValueBytes) + "-byte limit");
    if (count > kMaxMetadataEntries)
        throw MetadataTooLarge("more than " + std::to_string(kMaxMetadataEntries) + " metadata entries");
}

std::pair<std::string, std::string> raw_entry(const std::string& b, size_t off, size_t len) {
    std::string key, value;
    size_t i = off, end = off + len;
    while (i < end) {
        uint64_t tag = read_varint(b, i, end);
        if ((tag & 7) != 2) throw NotOnnx("unexpected field type in a metadata entry");
        uint64_t n = read_varint(b, i, end);
        if (n > end - i) throw NotOnnx("metadata entry runs past its end");
        if ((tag >> 3) == 1) key = b.substr(i, size_t(n));
        else if ((tag >> 3) == 2) value = b.substr(i, size_t(n));
        i += size_t(n);
    }
    return {key, value};
}

bool has_nan(const std::string& b, size_t off, size_t len, int dtype) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(b.data()) + off;
    if (dtype == 1) {
        for (size_t k = 0; k + 4 <= len; k += 4) {
            uint32_t w = uint32_t(p[k]) | uint32_t(p[k + 1]) << 8 | uint32_t(p[k + 2]) << 16 | uint32_t(p[k + 3]) << 24;
            if ((w & 0x7F800000u) == 0x7F800000u && (w & 0x007FFFFFu)) return true;
        }
    } else if (dtype == 10) {
        for (size_t k = 0; k + 2 <= len; k += 2) {
            uint32_t h = uint32_t(p[k]) | uint32_t(p[k + 1]) << 8;
            if ((h & 0x7C00u) == 0x7C00u && (h & 0x03FFu)) return true;
        }
    } else if (dtype == 11) {
        for (size_t k = 0; k + 8 <= len; k += 8) {
            uint64_t u = 0;
            for (size_t j = 0; j < 8; ++j) u |= uint64_t(p[k + j]) << (8 * j);
            if ((u & 0x7FF0000000000000ull) == 0x7FF0000000000000ull && (u & 0x000FFFFFFFFFFFFFull)) return true;
        }
    }
    return false;
}

struct Field {
    int num, wire;
    uint64_t v;       // wire 0
    size_t off, len;  // wire 1, 2, 5
};

// The fields of the message in [start, end), as quasar/onnx_meta.py _fields yields them.
std::vector<Field> fields(const std::string& b, size_t start, size_t end) {
    std::vector<Field> out;
    Reader r(b, start, end);
    while (r.pos < end) {
        uint64_t tag;
        bool clean;
        if (!r.varint(tag, clean)) throw NotOnnx("truncated message");
        int num = int(tag >> 3), wire = int(tag & 7);
        if (num == 0) throw NotOnnx("field number 0");
        if (wire == 0) {
            uint64_t v;
            if (!r.varint(v, clean)) throw NotOnnx("truncated field");
            out.push_back({num, wire, v, 0, 0});
        } else if (wire == 1 || wire == 5) {
            size_t width = wire == 1 ? 8 : 4;
            if (r.pos + width > end) throw NotOnnx("field runs past the end of its message");
            out.push_back({num, wire, 0, r.pos, width});
            r.pos += width;
        } else if (wire == 2) {
            uint64_t n;
            if (!r.varint(n, clean) || n > end - r.pos) throw NotOnnx("field runs past the end of its message");
            out.push_back({num, wire, 0, r.pos, size_t(n)});
            r.pos += size_t(n);
        } else {
            throw NotOnnx("wire type " + std::to_string(wire) + " does not occur in ONNX files");
        }
    }
    return out;
}

std::vector<uint64_t> packed_varints(const std::string& b, size_t off, size_t len) {
    std::vector<uint64_t> out;
    size_t i = off;
    while (i < off + len) out.push_back(read_varint(b, i, off + len));
    return out;
}

void put_le(std::string& out, uint64_t v, size_t bytes) {
    for (size_t k = 0; k < bytes; ++k) out += char((v >> (8 * k)) & 0xFF);
}

std::string typed_bytes(const std::string& b, const std::vector<Field>& parts, int dtype) {
    std::string out;
    if (dtype == 1 || dtype == 11) {
        size_t width = dtype == 1 ? 4 : 8;
        for (const auto& p : parts)
            if (p.wire == 2 || ((p.wire == 1 || p.wire == 5) && p.len == width)) out.append(b, p.off, p.len);
        return out;
    }
    std::vector<uint64_t> values;
    for (const auto& p : parts) {
        if (p.wire == 2) {
            auto vs = packed_varints(b, p.off, p.len);
            values.insert(values.end(), vs.begin(), vs.end());
        } else if (p.wire == 0) {
            values.push_back(p.v);
        }
    }
    for (uint64_t x : values) {
        switch (dtype) {
            case 13: case 7: put_le(out, x, 8); break;  // uint64; int64 two's complement
            case 10: case 16: case 4: case 5: put_le(out, x & 0xFFFF, 2); break;
            case 2: case 9: case 3: put_le(out, x & 0xFF, 1); break;
            default: put_le(out, x & 0xFFFFFFFF, 4); break;  // int32, uint32
        }
    }
    return out;
}

int typed_field(int dtype) {
    switch (dtype) {
        case 1: return 4;
        case 7: return 7;
        case 11: return 10;
        case 12: case 13: return 11;
        default: return 5;
    }
}

bool tensor(const std::string& b, size_t start, size_t end, const std::string& prefix, std::string& name, int& dtype,
            OnnxTensor& t, OnnxModel* scan = nullptr) {
    name.clear();
    dtype = 0;
    uint64_t location = 0;
    std::vector<int64_t> dims;
    bool has_raw = false;
    Field raw{};
    std::map<int, std::vector<Field>> typed;
    for (const auto& f : fields(b, start, end)) {
        if (f.num == 1) {
            if (f.wire == 0) dims.push_back(int64_t(f.v));
            else if (f.wire == 2)
                for (uint64_t v : packed_varints(b, f.off, f.len)) dims.push_back(int64_t(v));
        } else if (f.num == 2 && f.wire == 0) {
            dtype = int(f.v);
        } else if (f.num == 8 && f.wire == 2) {
            if (f.len > kMaxNameBytes) throw NotOnnx("initializer name too long");
            name = utf8_replace(b.substr(f.off, f.len));
        } else if (f.num == 9 && f.wire == 2) {
            has_raw = true;
            raw = f;
        } else if (f.num == 14 && f.wire == 0) {
            location = f.v;
        } else if ((f.num == 4 || f.num == 5 || f.num == 7 || f.num == 10 || f.num == 11) && f.wire != 3 && f.wire != 4) {
            typed[f.num].push_back(f);
        }
    }
    if (scan && location == 1) {
        scan->external.push_back(name);
    } else if (scan && (dtype == 1 || dtype == 10 || dtype == 11)) {
        if (has_raw) {
            if (has_nan(b, raw.off, raw.len, dtype)) scan->nan.push_back(name);
        } else {
            std::string data = typed_bytes(b, typed[typed_field(dtype)], dtype);
            if (has_nan(data, 0, data.size(), dtype)) scan->nan.push_back(name);
        }
    }
    if (name.compare(0, prefix.size(), prefix) != 0) return false;
    if (location == 1) throw NotOnnx("initializer '" + name + "' keeps its data in an external file");
    size_t size = dtype_size(dtype);
    if (!size) throw NotOnnx("initializer '" + name + "' has data type " + std::to_string(dtype) +
                             ", which a head tensor never has");
    uint64_t count = 1;
    for (int64_t d : dims) {
        if (d < 0 || d > (int64_t(1) << 40)) throw NotOnnx("initializer '" + name + "' has a bad dimension " + std::to_string(d));
        count *= uint64_t(d);
        if (count > kMaxHeadTensorBytes) break;
    }
    if (count * size > kMaxHeadTensorBytes)
        throw NotOnnx("initializer '" + name + "' is " + std::to_string(count * size) + " bytes, too large for a head tensor");
    std::string data = has_raw ? b.substr(raw.off, raw.len) : typed_bytes(b, typed[typed_field(dtype)], dtype);
    if (data.size() != count * size)
        throw NotOnnx("initializer '" + name + "' holds " + std::to_string(data.size()) + " bytes, its shape needs " +
                      std::to_string(count * size));
    t.name = name;
    t.data_type = dtype;
    t.dims = dims;
    t.data = std::move(data);
    return true;
}

OnnxValueInfo value_info(const std::string& b, size_t start, size_t end) {
    OnnxValueInfo vi;
    for (const auto& f : fields(b, start, end)) {
        if (f.num == 1 && f.wire == 2) vi.name = utf8_replace(b.substr(f.off, f.len));
        if (f.num != 2 || f.wire != 2) continue;  // TypeProto
        for (const auto& tf : fields(b, f.off, f.off + f.len)) {
            if (tf.num != 1 || tf.wire != 2) continue;  // tensor_type
            for (const auto& tt : fields(b, tf.off, tf.off + tf.len)) {
                if (tt.num == 1 && tt.wire == 0) vi.elem_type = int(tt.v);
                if (tt.num != 2 || tt.wire != 2) continue;  // shape
                for (const auto& dim : fields(b, tt.off, tt.off + tt.len)) {
                    if (dim.num != 1 || dim.wire != 2) continue;
                    int64_t value = -1;
                    std::string param;
                    for (const auto& dv : fields(b, dim.off, dim.off + dim.len)) {
                        if (dv.num == 1 && dv.wire == 0) value = int64_t(dv.v);
                        if (dv.num == 2 && dv.wire == 2) param = utf8_replace(b.substr(dv.off, dv.len));
                    }
                    vi.dims.push_back(value);
                    vi.dim_names.push_back(param);
                }
            }
        }
    }
    return vi;
}

}  // namespace

std::vector<double> OnnxTensor::values() const {
    std::vector<double> out;
    size_t size = dtype_size(data_type);
    if (!size) return out;
    const uint8_t* p = reinterpret_cast<const uint8_t*>(data.data());
    for (size_t k = 0; k + size <= data.size(); k += size) {
        uint64_t u = 0;
        for (size_t j = 0; j < size; ++j) u |= uint64_t(p[k + j]) << (8 * j);
        double v = 0;
        switch (data_type) {
            case 1: { uint32_t w = uint32_t(u); float f; std::memcpy(&f, &w, 4); v = f; break; }
            case 11: { double d; std::memcpy(&d, &u, 8); v = d; break; }
            case 10: {  // IEEE half
                uint32_t h = uint32_t(u), s = (h >> 15) & 1, e = (h >> 10) & 0x1F, m = h & 0x3FF;
                double mag = e == 0 ? std::ldexp(double(m), -24) : e == 31 ? (m ? std::nan("") : HUGE_VAL) : std::ldexp(double(m | 0x400), int(e) - 25);
                v = s ? -mag : mag;
                break;
            }
            case 16: { uint32_t w = uint32_t(u) << 16; float f; std::memcpy(&f, &w, 4); v = f; break; }
            case 2: case 4: case 12: case 13: case 9: v = double(u); break;
            case 3: v = double(int8_t(u)); break;
            case 5: v = double(int16_t(u)); break;
            case 6: v = double(int32_t(u)); break;
            case 7: v = double(int64_t(u)); break;
        }
        out.push_back(v);
    }
    return out;
}

std::map<std::string, std::string> read_metadata_props(const std::string& b) {
    std::map<std::string, std::string> props;
    Reader r(b, 0, b.size());
    size_t seen = 0, entries = 0;
    while (true) {
        uint64_t tag;
        bool clean;
        if (!r.varint(tag, clean)) break;
        int field = int(tag >> 3), wire = int(tag & 7);
        if (field == 0 || field > 64) throw NotOnnx("field number " + std::to_string(field) + " is not part of ModelProto");
        if (wire == 0) {
            uint64_t v;
            if (!r.varint(v, clean)) throw NotOnnx("truncated field");
        } else if (wire == 1) {
            r.pos += 8;
        } else if (wire == 5) {
            r.pos += 4;
        } else if (wire == 2) {
            uint64_t n;
            if (!r.varint(n, clean) || n > b.size() - std::min(r.pos, b.size()))
                throw NotOnnx("field runs past the end of the file");
            if (field == kMetadataProps) {
                check_metadata_entry(n, ++entries);
                auto kv = entry(b.substr(r.pos, size_t(n)));
                props[kv.first] = kv.second;
            }
            r.pos += size_t(n);
        } else {
            throw NotOnnx("wire type " + std::to_string(wire) + " does not occur in ONNX files");
        }
        ++seen;
        if (r.pos > b.size()) throw NotOnnx("field runs past the end of the file");
    }
    if (seen == 0) throw NotOnnx("empty file");
    return props;
}

void model_layout(const std::string& b, std::vector<std::pair<size_t, size_t>>& ranges,
                  std::vector<std::pair<std::string, std::string>>& entries) {
    size_t pos = 0;
    while (pos < b.size()) {
        size_t start = pos;
        uint64_t tag = read_varint(b, pos, b.size());
        int num = int(tag >> 3), wire = int(tag & 7);
        if (num == 0) throw NotOnnx("field number 0");
        if (num > 64) throw NotOnnx("field number " + std::to_string(num) + " is not part of ModelProto");
        if (wire == 0) {
            read_varint(b, pos, b.size());
        } else if (wire == 1 || wire == 5) {
            size_t width = wire == 1 ? 8 : 4;
            if (width > b.size() - pos) throw NotOnnx("field runs past the end of its message");
            pos += width;
        } else if (wire == 2) {
            uint64_t n = read_varint(b, pos, b.size());
            if (n > b.size() - pos) throw NotOnnx("field runs past the end of its message");
            if (num == kMetadataProps) {
                check_metadata_entry(n, entries.size() + 1);
                entries.push_back(raw_entry(b, pos, size_t(n)));
                pos += size_t(n);
                continue;
            }
            pos += size_t(n);
        } else {
            throw NotOnnx("wire type " + std::to_string(wire) + " does not occur in ONNX files");
        }
        ranges.emplace_back(start, pos);
    }
    if (ranges.empty() && entries.empty()) throw NotOnnx("empty file");
}

void read_graph(const std::string& b, const std::string& prefix, OnnxModel& out) {
    const Field* graph = nullptr;
    auto top = fields(b, 0, b.size());
    for (const auto& f : top)
        if (f.num == kGraph && f.wire == 2) graph = &f;
    if (!graph) throw NotOnnx("no graph");
    for (const auto& f : fields(b, graph->off, graph->off + graph->len)) {
        if (f.wire != 2) continue;
        if (f.num == kInitializer) {
            std::string name;
            int dtype;
            OnnxTensor t;
            bool kept = tensor(b, f.off, f.off + f.len, prefix, name, dtype, t, &out);
            out.dtypes[dtype] += 1;
            if (kept) {
                if (out.head_tensors.count(name)) throw NotOnnx("two initializers are named '" + name + "'");
                out.head_tensors[name] = std::move(t);
            }
        } else if (f.num == kGraphInput) {
            out.inputs.push_back(value_info(b, f.off, f.off + f.len));
        } else if (f.num == kGraphOutput) {
            out.outputs.push_back(value_info(b, f.off, f.off + f.len));
        }
    }
}

}  // namespace quasar
