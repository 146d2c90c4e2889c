#include "graph_rewrite.hpp"

#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "onnx_reader.hpp"

namespace quasar {

namespace {

constexpr int kGraph = 7, kNode = 1, kInitializer = 5;

struct RawField {
    int num, wire;
    size_t start, end;        // the whole field, tag included
    size_t data, data_len;    // wire 2: the payload
};

std::vector<RawField> raw_fields(const std::string& b, size_t start, size_t end) {
    std::vector<RawField> out;
    size_t i = start;
    while (i < end) {
        size_t s = i;
        uint64_t tag = read_varint(b, i, end);
        int wire = int(tag & 7);
        RawField f{int(tag >> 3), wire, s, 0, 0, 0};
        if (wire == 0) read_varint(b, i, end);
        else if (wire == 1) i += 8;
        else if (wire == 5) i += 4;
        else if (wire == 2) {
            uint64_t n = read_varint(b, i, end);
            if (n > end - i) throw NotOnnx("field runs past the end of its message");
            f.data = i;
            f.data_len = size_t(n);
            i += size_t(n);
        } else {
            throw NotOnnx("unexpected wire type");
        }
        if (i > end) throw NotOnnx("field runs past the end of its message");
        f.end = i;
        out.push_back(f);
    }
    return out;
}

void put_varint(std::string& out, uint64_t v) {
    while (v >= 0x80) {
        out += char(v | 0x80);
        v >>= 7;
    }
    out += char(v);
}

void put_bytes(std::string& out, int num, const std::string& payload) {
    put_varint(out, uint64_t(num) << 3 | 2);
    put_varint(out, payload.size());
    out += payload;
}

void put_float(std::string& out, int num, float v) {
    put_varint(out, uint64_t(num) << 3 | 5);
    char buf[4];
    std::memcpy(buf, &v, 4);  // little-endian hosts (x86, ARM)
    out.append(buf, 4);
}

struct Node {
    std::string op, name;
    std::vector<std::string> in, out;
    bool has_attr = false;
};

Node parse_node(const std::string& b, size_t start, size_t end) {
    Node n;
    for (const auto& f : raw_fields(b, start, end)) {
        if (f.wire != 2) continue;
        std::string s = b.substr(f.data, f.data_len);
        if (f.num == 1) n.in.push_back(s);
        else if (f.num == 2) n.out.push_back(s);
        else if (f.num == 3) n.name = s;
        else if (f.num == 4) n.op = s;
        else if (f.num == 5) n.has_attr = true;
    }
    return n;
}

// A float scalar initializer's value (raw_data or float_data), if it is one.
bool scalar_value(const std::string& b, size_t start, size_t end, std::string& name, float& value) {
    int dtype = 0;
    size_t count = 1;
    std::string raw;
    bool have = false;
    for (const auto& f : raw_fields(b, start, end)) {
        size_t i = f.start;
        uint64_t tag = read_varint(b, i, f.end);
        (void)tag;
        if (f.num == 1 && f.wire == 0) {
            size_t j = i;
            count *= size_t(read_varint(b, j, f.end));
        } else if (f.num == 1 && f.wire == 2) {
            size_t j = f.data;
            while (j < f.data + f.data_len) count *= size_t(read_varint(b, j, f.data + f.data_len));
        } else if (f.num == 2 && f.wire == 0) {
            size_t j = i;
            dtype = int(read_varint(b, j, f.end));
        } else if (f.num == 8 && f.wire == 2) {
            name = b.substr(f.data, f.data_len);
        } else if (f.num == 9 && f.wire == 2) {
            raw = b.substr(f.data, f.data_len);
            have = true;
        } else if (f.num == 4 && f.wire == 2 && f.data_len == 4) {
            raw = b.substr(f.data, 4);
            have = true;
        } else if (f.num == 4 && f.wire == 5) {
            raw = b.substr(f.end - 4, 4);
            have = true;
        }
    }
    if (dtype != 1 || count != 1 || !have || raw.size() != 4) return false;
    std::memcpy(&value, raw.data(), 4);
    return true;
}

// Clip in the opset-6 form OpenCV parses: one input, bounds as float attributes (absent: unbounded).
std::string clip_node(const std::string& x, const std::string& out, const std::string& name, const float* lo, const float* hi) {
    std::string n;
    put_bytes(n, 1, x);
    put_bytes(n, 2, out);
    put_bytes(n, 3, name);
    put_bytes(n, 4, "Clip");
    for (auto kv : {std::make_pair("min", lo), std::make_pair("max", hi)}) {
        if (!kv.second) continue;
        std::string a;
        put_bytes(a, 1, kv.first);
        put_float(a, 2, *kv.second);
        put_varint(a, uint64_t(20) << 3 | 0);  // AttributeProto.type = FLOAT
        put_varint(a, 1);
        put_bytes(n, 5, a);
    }
    return n;
}

}  // namespace

std::string rewrite_for_opencv(const std::string& model, int& rewritten) {
    rewritten = 0;
    auto top = raw_fields(model, 0, model.size());
    const RawField* graph = nullptr;
    for (const auto& f : top)
        if (f.num == kGraph && f.wire == 2) graph = &f;
    if (!graph) return model;
    auto gf = raw_fields(model, graph->data, graph->data + graph->data_len);
    std::vector<Node> nodes;
    std::vector<size_t> node_field;  // index into gf
    std::map<std::string, float> scalars;
    for (size_t k = 0; k < gf.size(); ++k) {
        const auto& f = gf[k];
        if (f.wire != 2) continue;
        if (f.num == kNode) {
            nodes.push_back(parse_node(model, f.data, f.data + f.data_len));
            node_field.push_back(k);
        } else if (f.num == kInitializer) {
            std::string name;
            float v;
            if (scalar_value(model, f.data, f.data + f.data_len, name, v)) scalars[name] = v;
        }
    }
    std::map<std::string, size_t> producer;
    std::map<std::string, int> uses;
    for (size_t i = 0; i < nodes.size(); ++i) {
        for (const auto& o : nodes[i].out) producer[o] = i;
        for (const auto& in : nodes[i].in) uses[in] += 1;
    }
    std::set<size_t> drop;
    std::map<size_t, std::string> replace;  // node index -> new node bytes
    for (size_t i = 0; i < nodes.size(); ++i) {  // Clip(x, lo, hi) with constant bounds -> attribute form
        const Node& n = nodes[i];
        if (n.op != "Clip" || n.in.size() < 2 || n.in.size() > 3 || n.out.size() != 1 || n.has_attr) continue;
        const std::string& lo_name = n.in[1];
        const std::string hi_name = n.in.size() > 2 ? n.in[2] : std::string();
        if ((!lo_name.empty() && !scalars.count(lo_name)) || (!hi_name.empty() && !scalars.count(hi_name))) continue;
        float lo = lo_name.empty() ? 0.f : scalars[lo_name], hi = hi_name.empty() ? 0.f : scalars[hi_name];
        replace[i] = clip_node(n.in[0], n.out[0], n.name, lo_name.empty() ? nullptr : &lo, hi_name.empty() ? nullptr : &hi);
    }
    for (size_t i = 0; i < nodes.size(); ++i) {
        const Node& d = nodes[i];  // d = Sub(a, c), a = Relu(x), c = Relu(b), b = Sub(x, hi)
        if (d.op != "Sub" || d.in.size() != 2 || d.out.size() != 1 || d.has_attr) continue;
        auto pa = producer.find(d.in[0]), pc = producer.find(d.in[1]);
        if (pa == producer.end() || pc == producer.end()) continue;
        const Node &a = nodes[pa->second], &c = nodes[pc->second];
        if (a.op != "Relu" || c.op != "Relu" || a.in.size() != 1 || c.in.size() != 1) continue;
        auto pb = producer.find(c.in[0]);
        if (pb == producer.end()) continue;
        const Node& b = nodes[pb->second];
        if (b.op != "Sub" || b.in.size() != 2 || b.in[0] != a.in[0] || !scalars.count(b.in[1])) continue;
        float hi = scalars[b.in[1]];
        if (!(hi > 0)) continue;
        if (uses[a.out[0]] != 1 || uses[b.out[0]] != 1 || uses[c.out[0]] != 1) continue;
        drop.insert(pa->second);
        drop.insert(pb->second);
        drop.insert(pc->second);
        const float zero = 0.f;
        replace[i] = clip_node(a.in[0], d.out[0], d.name + "/clip", &zero, &hi);
    }
    if (replace.empty()) return model;
    rewritten = int(replace.size());
    std::map<size_t, size_t> field_to_node;
    for (size_t i = 0; i < node_field.size(); ++i) field_to_node[node_field[i]] = i;
    std::string g;
    g.reserve(graph->data_len);
    for (size_t k = 0; k < gf.size(); ++k) {
        auto it = field_to_node.find(k);
        if (it != field_to_node.end()) {
            if (drop.count(it->second)) continue;
            auto r = replace.find(it->second);
            if (r != replace.end()) {
                put_bytes(g, kNode, r->second);
                continue;
            }
        }
        g.append(model, gf[k].start, gf[k].end - gf[k].start);
    }
    std::string out;
    out.reserve(model.size());
    for (const auto& f : top) {
        if (&f == graph) put_bytes(out, kGraph, g);
        else out.append(model, f.start, f.end - f.start);
    }
    return out;
}

}  // namespace quasar
