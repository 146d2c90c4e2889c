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

// The graph's nodes (with the index of their field) and its float scalar initializers.
struct GraphView {
    std::vector<RawField> fields;
    std::vector<Node> nodes;
    std::vector<size_t> node_field;  // index into fields
    std::map<std::string, float> scalars;
    std::map<std::string, size_t> producer;
    std::map<std::string, int> uses;
};

GraphView view_graph(const std::string& model, const RawField& graph) {
    GraphView v;
    v.fields = raw_fields(model, graph.data, graph.data + graph.data_len);
    for (size_t k = 0; k < v.fields.size(); ++k) {
        const auto& f = v.fields[k];
        if (f.wire != 2) continue;
        if (f.num == kNode) {
            v.nodes.push_back(parse_node(model, f.data, f.data + f.data_len));
            v.node_field.push_back(k);
        } else if (f.num == kInitializer) {
            std::string name;
            float value;
            if (scalar_value(model, f.data, f.data + f.data_len, name, value)) v.scalars[name] = value;
        }
    }
    for (size_t i = 0; i < v.nodes.size(); ++i) {
        for (const auto& o : v.nodes[i].out) v.producer[o] = i;
        for (const auto& in : v.nodes[i].in) v.uses[in] += 1;
    }
    return v;
}

// Clip(x, lo, hi) with constant bounds -> the attribute form.
void rewrite_clips(GraphView& v, std::map<size_t, std::string>& replace) {
    for (size_t i = 0; i < v.nodes.size(); ++i) {
        const Node& n = v.nodes[i];
        if (n.op != "Clip" || n.in.size() < 2 || n.in.size() > 3 || n.out.size() != 1 || n.has_attr) continue;
        const std::string& lo_name = n.in[1];
        const std::string hi_name = n.in.size() > 2 ? n.in[2] : std::string();
        if ((!lo_name.empty() && !v.scalars.count(lo_name)) || (!hi_name.empty() && !v.scalars.count(hi_name))) continue;
        float lo = lo_name.empty() ? 0.f : v.scalars[lo_name], hi = hi_name.empty() ? 0.f : v.scalars[hi_name];
        replace[i] = clip_node(n.in[0], n.out[0], n.name, lo_name.empty() ? nullptr : &lo, hi_name.empty() ? nullptr : &hi);
    }
}

// Relu(x) - Relu(x - hi) (ReLU6 in its Relu form) -> one Clip(x, 0, hi); the three inner nodes go.
void rewrite_relu_pairs(GraphView& v, std::map<size_t, std::string>& replace, std::set<size_t>& drop) {
    for (size_t i = 0; i < v.nodes.size(); ++i) {
        const Node& d = v.nodes[i];  // d = Sub(a, c), a = Relu(x), c = Relu(b), b = Sub(x, hi)
        if (d.op != "Sub" || d.in.size() != 2 || d.out.size() != 1 || d.has_attr) continue;
        auto pa = v.producer.find(d.in[0]), pc = v.producer.find(d.in[1]);
        if (pa == v.producer.end() || pc == v.producer.end()) continue;
        const Node &a = v.nodes[pa->second], &c = v.nodes[pc->second];
        if (a.op != "Relu" || c.op != "Relu" || a.in.size() != 1 || c.in.size() != 1) continue;
        auto pb = v.producer.find(c.in[0]);
        if (pb == v.producer.end()) continue;
        const Node& b = v.nodes[pb->second];
        if (b.op != "Sub" || b.in.size() != 2 || b.in[0] != a.in[0] || !v.scalars.count(b.in[1])) continue;
        float hi = v.scalars[b.in[1]];
        if (!(hi > 0)) continue;
        if (v.uses[a.out[0]] != 1 || v.uses[b.out[0]] != 1 || v.uses[c.out[0]] != 1) continue;
        drop.insert(pa->second);
        drop.insert(pb->second);
        drop.insert(pc->second);
        const float zero = 0.f;
        replace[i] = clip_node(a.in[0], d.out[0], d.name + "/clip", &zero, &hi);
    }
}

// The graph's bytes with the dropped nodes left out and the replaced ones swapped in.
std::string write_graph(const std::string& model, const GraphView& v, const std::map<size_t, std::string>& replace,
                        const std::set<size_t>& drop, size_t size_hint) {
    std::map<size_t, size_t> field_to_node;
    for (size_t i = 0; i < v.node_field.size(); ++i) field_to_node[v.node_field[i]] = i;
    std::string g;
    g.reserve(size_hint);
    for (size_t k = 0; k < v.fields.size(); ++k) {
        auto it = field_to_node.find(k);
        if (it != field_to_node.end()) {
            if (drop.count(it->second)) continue;
            auto r = replace.find(it->second);
            if (r != replace.end()) {
                put_bytes(g, kNode, r->second);
                continue;
            }
        }
        g.append(model, v.fields[k].start, v.fields[k].end - v.fields[k].start);
    }
    return g;
}

}  // namespace

std::string rewrite_for_opencv(const std::string& model, int& rewritten) {
    rewritten = 0;
    auto top = raw_fields(model, 0, model.size());
    const RawField* graph = nullptr;
    for (const auto& f : top)
        if (f.num == kGraph && f.wire == 2) graph = &f;
    if (!graph) return model;
    GraphView v = view_graph(model, *graph);
    std::set<size_t> drop;
    std::map<size_t, std::string> replace;  // node index -> new node bytes
    rewrite_clips(v, replace);
    rewrite_relu_pairs(v, replace, drop);
    if (replace.empty()) return model;
    rewritten = int(replace.size());
    std::string g = write_graph(model, v, replace, drop, graph->data_len);
    std::string out;
    out.reserve(model.size());
    for (const auto& f : top) {
        if (&f == graph) put_bytes(out, kGraph, g);
        else out.append(model, f.start, f.end - f.start);
    }
    return out;
}

}  // namespace quasar
