#include "contract.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "errors.hpp"
#include "sha256.hpp"
#include "varint.hpp"

namespace quasar {

const char* const kFormat = "quasar-fused-model";
const char* const kInputName = "images";
const char* const kInputLayout = "NHWC_uint8";

namespace {

const std::vector<std::string> kRequired = {"quasar.format", "quasar.format_version", "quasar.heads", "quasar.preprocess",
                                            "quasar.encoder", "quasar.input_layout", "quasar.dynamic_size"};
const std::vector<std::string> kPrecisions = {"fp32", "fp16", "int8"};
const std::vector<std::string> kCombineRules = {"min", "mean", "softmin"};
const char* const kHeadPrefix = "quasar.";
const char* const kLogitScalesKey = "quasar.logit_scales";
const char* const kCombineKey = "quasar.combine";
const char* const kExplainKey = "quasar.explain";
const char* const kHeadShaKey = "quasar.head_sha256";
const char* const kModelShaKey = "quasar.model_sha256";
const char* const kModelShaDomain = "quasar-model-sha256/1\n";
const char* const kEngineSidecarFormat = "quasar-tensorrt-engine";
constexpr int kEngineSidecarVersion = 1;

Error model_error(const std::string& msg) { return Error(QUASAR_ERR_MODEL, one_line(msg)); }

// First ``n`` characters (not bytes) of UTF-8 text, as Python's s[:n].
std::string head_chars(const std::string& s, size_t n) {
    size_t i = 0, chars = 0;
    while (i < s.size() && chars < n) {
        ++i;
        while (i < s.size() && (uint8_t(s[i]) & 0xC0) == 0x80) ++i;
        ++chars;
    }
    return s.substr(0, i);
}

Json parse_key(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& path) {
    Json v;
    std::string err;
    if (!parse_json(meta.at(key), v, err))
        throw model_error(path + ": " + key + " is not valid JSON: " + py_repr(head_chars(meta.at(key), 80)));
    return v;
}

bool is_true_int(const Json& v) { return v.kind == Json::Number && v.is_int; }

bool parse_py_int(const std::string& text, long long& out) {
    // int(str): optional surrounding whitespace, a sign, digits with single underscores between them
    std::string t = text;
    auto sp = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
    while (!t.empty() && sp(t.front())) t.erase(t.begin());
    while (!t.empty() && sp(t.back())) t.pop_back();
    size_t i = 0;
    bool neg = false;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
    if (i >= t.size()) return false;
    long long v = 0;
    bool prev_digit = false;
    for (; i < t.size(); ++i) {
        if (t[i] == '_' && prev_digit && i + 1 < t.size() && std::isdigit(uint8_t(t[i + 1]))) { prev_digit = false; continue; }
        if (!std::isdigit(uint8_t(t[i]))) return false;
        v = v * 10 + (t[i] - '0');
        if (v > (1LL << 40)) v = 1LL << 40;  // clamp: "newer than" is all that matters
        prev_digit = true;
    }
    out = neg ? -v : v;
    return true;
}

std::string lower_strip(std::string s) {
    auto sp = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
    while (!s.empty() && sp(s.front())) s.erase(s.begin());
    while (!s.empty() && sp(s.back())) s.pop_back();
    for (auto& c : s) c = char(std::tolower(uint8_t(c)));
    return s;
}

std::string graph_precision(const std::map<int, int>& dtypes) {
    auto has = [&](int t) { auto it = dtypes.find(t); return it != dtypes.end() && it->second > 0; };
    if (has(2) || has(3)) return "int8";
    if (has(10)) return "fp16";
    return "fp32";
}

std::string head_sha256(const std::map<std::string, OnnxTensor>& tensors) {
    Sha256 h;  // std::map iterates in byte order of names, as Python's sorted() does for str of UTF-8 names
    for (const auto& kv : tensors) {
        if (kv.first.compare(0, std::strlen(kHeadPrefix), kHeadPrefix) != 0) continue;
        uint8_t len[8];
        uint64_t n = kv.first.size();
        for (int k = 0; k < 8; ++k) len[k] = uint8_t(n >> (8 * k));
        h.update(len, 8);
        h.update(kv.first.data(), kv.first.size());
        n = kv.second.data.size();
        for (int k = 0; k < 8; ++k) len[k] = uint8_t(n >> (8 * k));
        h.update(len, 8);
        h.update(kv.second.data.data(), kv.second.data.size());
    }
    return "sha256:" + h.hexdigest();
}

void put_len(Sha256& h, uint64_t n) {
    uint8_t len[8];
    for (int k = 0; k < 8; ++k) len[k] = uint8_t(n >> (8 * k));
    h.update(len, 8);
}

std::string round6_repr(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", v);
    return py_float_repr(std::strtod(buf, nullptr));
}

bool is_hex64(const std::string& s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

bool file_exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

std::vector<bool> ModelInfo::explain_mask() const {
    std::vector<bool> out(heads.size(), false);
    if (!explain.empty()) {
        for (int i : explain)
            if (i >= 0 && size_t(i) < out.size()) out[size_t(i)] = true;
        return out;
    }
    for (const auto& c : combine)
        for (int i : c.second)
            if (i >= 0 && size_t(i) < out.size()) out[size_t(i)] = true;
    return out;
}

std::vector<bool> ModelInfo::summary_mask() const {
    std::vector<bool> keep(heads.size(), true), shown = explain_mask();
    for (const auto& c : combine)
        for (int i : c.second)
            if (i >= 0 && size_t(i) < keep.size()) keep[size_t(i)] = false;
    for (size_t i = 0; i < keep.size(); ++i)
        if (shown[i]) keep[i] = false;
    return keep;
}

namespace {

using Meta = std::map<std::string, std::string>;
using BadModel = std::function<Error(const std::string&)>;

// quasar.format, quasar.format_version and the required keys; the format version.
int check_format(const Meta& meta, const BadModel& bad) {
    auto it = meta.find("quasar.format");
    if (it == meta.end()) throw bad("not a QUASAR fused model (no quasar.format metadata); export one with `quasar export`");
    if (it->second != kFormat)
        throw bad("not a QUASAR fused model: quasar.format is " + py_repr(it->second) + ", expected " + py_repr(kFormat));
    long long version = 0;
    auto vit = meta.find("quasar.format_version");
    if (vit == meta.end() || !parse_py_int(vit->second, version))
        throw bad("quasar.format_version " + (vit == meta.end() ? std::string("None") : py_repr(vit->second)) +
                  " is not an integer");
    if (version > kFormatVersion)
        throw bad("model format version " + std::to_string(version) + " is newer than this QUASAR supports (" +
                  std::to_string(kFormatVersion) + "); upgrade quasar-engine");
    if (version < 1) throw bad("unknown model format version " + std::to_string(version));
    std::string missing;
    for (const auto& k : kRequired)
        if (!meta.count(k)) missing += (missing.empty() ? "" : ", ") + k;
    if (!missing.empty()) throw bad("QUASAR model metadata is missing " + missing);
    return int(version);
}

std::vector<std::string> parse_heads(const Meta& meta, const std::string& path, const BadModel& bad) {
    Json heads = parse_key(meta, "quasar.heads", path);
    bool ok = heads.kind == Json::Array && !heads.arr.empty();
    std::set<std::string> seen;
    std::vector<std::string> out;
    if (ok)
        for (const auto& h : heads.arr) {
            if (h.kind != Json::String || h.str.empty() || !seen.insert(h.str).second) { ok = false; break; }
            out.push_back(h.str);
        }
    if (!ok) throw bad("quasar.heads must be a non-empty list of distinct names, got " + py_repr(meta.at("quasar.heads")));
    return out;
}

// The spec, the input layout and quasar.dynamic_size, which must agree with the spec's policy.
void parse_input(const Meta& meta, ModelInfo& info, const BadModel& bad) {
    try {
        info.spec = parse_spec(meta.at("quasar.preprocess"));
    } catch (const std::exception& e) {
        throw bad("bad quasar.preprocess spec: " + head_chars(e.what(), 200));
    }
    if (meta.at("quasar.input_layout") != kInputLayout)
        throw bad("quasar.input_layout is " + py_repr(meta.at("quasar.input_layout")) + "; the contract is " + kInputLayout);
    std::string dyn = lower_strip(meta.at("quasar.dynamic_size"));
    if (dyn != "true" && dyn != "false")
        throw bad("quasar.dynamic_size must be 'true' or 'false', got " + py_repr(meta.at("quasar.dynamic_size")));
    info.dynamic_size = dyn == "true";
    if (!info.dynamic_size && !info.spec.fixed_size())
        throw bad("the graph takes a fixed input size but its spec policy " + py_repr(info.spec.policy) + " gives varying sizes");
    if (info.dynamic_size && info.spec.policy == "fixed")
        throw bad("quasar.dynamic_size is true but the spec's policy 'fixed' makes every image " + std::to_string(info.spec.height) +
                  "x" + std::to_string(info.spec.width) + "; a static graph says dynamic_size false");
}

std::vector<double> parse_logit_scales(const Meta& meta, size_t num_heads, const std::string& path, const BadModel& bad) {
    std::vector<double> out;
    if (!meta.count(kLogitScalesKey)) return out;
    Json raw = parse_key(meta, kLogitScalesKey, path);
    bool good = raw.kind == Json::Array && raw.arr.size() == num_heads;
    if (good)
        for (const auto& s : raw.arr)
            if (s.kind != Json::Number || !std::isfinite(s.num)) good = false;
    if (!good)
        throw bad("quasar.logit_scales must list " + std::to_string(num_heads) + " finite numbers (one per head), got " +
                  py_repr(raw));
    for (const auto& s : raw.arr) out.push_back(s.num);
    return out;
}

std::vector<std::pair<std::string, std::vector<int>>> parse_combine(const Meta& meta, size_t num_heads,
                                                                     const std::string& path, const BadModel& bad) {
    std::vector<std::pair<std::string, std::vector<int>>> out;
    if (!meta.count(kCombineKey)) return out;
    Json raw = parse_key(meta, kCombineKey, path);
    if (raw.kind != Json::Array || raw.arr.size() >= num_heads)
        throw bad(std::string(kCombineKey) + " must be a list with fewer entries than the " + std::to_string(num_heads) +
                  " heads, got " + py_repr(head_chars(meta.at(kCombineKey), 80)));
    int n_base = int(num_heads - raw.arr.size());
    for (const auto& e : raw.arr) {
        bool good = e.kind == Json::Array && e.arr.size() == 2 && e.arr[0].kind == Json::String &&
                    std::find(kCombineRules.begin(), kCombineRules.end(), e.arr[0].str) != kCombineRules.end() &&
                    e.arr[1].kind == Json::Array && !e.arr[1].arr.empty();
        std::vector<int> idx;
        if (good)
            for (const auto& i : e.arr[1].arr) {
                if (!is_true_int(i) || i.num < 0 || i.num >= n_base) { good = false; break; }
                idx.push_back(int(i.num));
            }
        if (!good)
            throw bad(std::string(kCombineKey) + " entry " + py_repr(e) + " is not [rule in ['min', 'mean', 'softmin'], " +
                      "[base columns < " + std::to_string(n_base) + "]]");
        out.emplace_back(e.arr[0].str, idx);
    }
    return out;
}

// quasar.explain (quasar/contract.py _parse_explain): distinct base columns, at least one.
std::vector<int> parse_explain(const Meta& meta, int n_base, const std::string& path, const BadModel& bad) {
    std::vector<int> out;
    if (!meta.count(kExplainKey)) return out;
    Json raw = parse_key(meta, kExplainKey, path);
    bool good = raw.kind == Json::Array && !raw.arr.empty();
    if (good)
        for (const auto& i : raw.arr) {
            if (!is_true_int(i) || i.num < 0 || i.num >= n_base ||
                std::find(out.begin(), out.end(), int(i.num)) != out.end()) { good = false; break; }
            out.push_back(int(i.num));
        }
    if (!good)
        throw bad(std::string(kExplainKey) + " must be a non-empty list of distinct base columns < " + std::to_string(n_base) +
                  ", got " + py_repr(head_chars(meta.at(kExplainKey), 80)));
    return out;
}

}  // namespace

ModelInfo parse_metadata(const std::map<std::string, std::string>& meta, const std::string& path, const std::string& kind) {
    BadModel bad = [&](const std::string& msg) { return model_error(path + ": " + msg); };
    ModelInfo info;
    info.format_version = check_format(meta, bad);
    info.path = path;
    info.kind = kind;
    info.metadata = meta;
    info.heads = parse_heads(meta, path, bad);
    parse_input(meta, info, bad);
    info.encoder = meta.at("quasar.encoder");
    info.logit_scales = parse_logit_scales(meta, info.heads.size(), path, bad);
    if (meta.count("quasar.precision")) {
        info.precision = meta.at("quasar.precision");
        if (std::find(kPrecisions.begin(), kPrecisions.end(), info.precision) == kPrecisions.end())
            throw bad("unknown precision " + py_repr(info.precision) + " (quasar.precision is one of fp32, fp16, int8)");
    }
    if (meta.count("quasar.pack_hash")) info.pack_hash = meta.at("quasar.pack_hash");
    if (meta.count("quasar.project_version")) info.project_version = meta.at("quasar.project_version");
    info.combine = parse_combine(meta, info.heads.size(), path, bad);
    info.explain = parse_explain(meta, int(info.heads.size() - info.combine.size()), path, bad);
    if (!info.explain.empty() && info.format_version < kExplainFormatVersion)
        throw bad(std::string(kExplainKey) + " needs model format version " + std::to_string(kExplainFormatVersion) +
                  ", the model says " + std::to_string(info.format_version));
    return info;
}

std::string model_sha256(const std::string& bytes, int& own_entries) {
    std::vector<std::pair<size_t, size_t>> ranges;
    std::vector<std::pair<std::string, std::string>> entries, kept;
    model_layout(bytes, ranges, entries);
    Sha256 h;
    h.update(kModelShaDomain, std::strlen(kModelShaDomain));
    for (const auto& r : ranges) h.update(bytes.data() + r.first, r.second - r.first);
    for (auto& e : entries)
        if (e.first != kModelShaKey) kept.push_back(std::move(e));
    own_entries = int(entries.size() - kept.size());
    std::sort(kept.begin(), kept.end());  // byte order of (key, value), as Python's sorted() of bytes pairs
    put_len(h, kept.size());
    for (const auto& e : kept) {
        put_len(h, e.first.size());
        h.update(e.first.data(), e.first.size());
        put_len(h, e.second.size());
        h.update(e.second.data(), e.second.size());
    }
    return "sha256:" + h.hexdigest();
}

namespace {

// quasar.pack_hash and quasar.encoder are well formed.
void check_ids(const ModelInfo& info, const BadModel& bad) {
    const auto& meta = info.metadata;
    if (meta.count("quasar.pack_hash")) {
        const std::string& ph = meta.at("quasar.pack_hash");
        if (!(ph.size() == 71 && ph.compare(0, 7, "sha256:") == 0 && is_hex64(ph.substr(7))))
            throw bad("quasar.pack_hash " + py_repr(head_chars(ph, 80)) + " is not 'sha256:' and 64 hex digits");
    }
    const std::string& enc = info.encoder;
    bool good = !enc.empty() && enc.size() <= 200;
    for (char c : enc)
        if (uint8_t(c) < 0x21 || uint8_t(c) > 0x7e) good = false;
    if (!good) throw bad("quasar.encoder " + py_repr(head_chars(enc, 80)) + " is not an encoder id");
}

// quasar.precision agrees with the weights' data types; quasar.head_sha256 with the head initializers.
void check_precision_and_heads(const ModelInfo& info, const OnnxModel& graph, const BadModel& bad) {
    if (!info.precision.empty() && info.precision != graph_precision(graph.dtypes)) {
        std::string kinds;
        for (const auto& kv : graph.dtypes) {
            auto n = kDtypeNames.find(kv.first);
            kinds += (kinds.empty() ? "" : ", ") + (n != kDtypeNames.end() ? n->second : std::to_string(kv.first)) + ": " +
                     std::to_string(kv.second);
        }
        throw bad("quasar.precision says " + py_repr(info.precision) + " but the graph's weights (" + kinds + ") are " +
                  graph_precision(graph.dtypes));
    }
    auto rec = info.metadata.find(kHeadShaKey);
    if (rec == info.metadata.end())
        throw bad(std::string("no ") + kHeadShaKey + " in the metadata (exported by an older QUASAR, or edited)");
    std::string actual = head_sha256(graph.head_tensors);
    if (rec->second != actual)
        throw bad(std::string(kHeadShaKey) + " " + py_repr(head_chars(rec->second, 23)) +
                  "... does not match the graph's head initializers (" + actual.substr(0, 23) +
                  "...): the graph or its metadata was changed after export");
}

// The logit scales initializer: float32, equal to the metadata's list, each within 0 < s <= kMaxLogitScale
// (quasar/contract.py _check_logit_scales).
void check_logit_scales(const ModelInfo& info, const OnnxModel& graph, const BadModel& bad) {
    const auto& meta = info.metadata;
    auto t = graph.head_tensors.find(kLogitScalesKey);
    if (t == graph.head_tensors.end()) throw bad(std::string("the graph has no ") + kLogitScalesKey + " initializer");
    if (t->second.data_type != 1) {
        auto n = kDtypeNames.find(t->second.data_type);
        throw bad(std::string("the ") + kLogitScalesKey + " initializer is " +
                  (n != kDtypeNames.end() ? n->second : std::string("None")) + ", not float32");
    }
    Json listed;
    std::string err;
    bool good = meta.count(kLogitScalesKey) && parse_json(meta.at(kLogitScalesKey), listed, err) && listed.kind == Json::Array;
    std::vector<double> want;
    if (good)
        for (const auto& s : listed.arr) {
            if (s.kind != Json::Number) { good = false; break; }
            want.push_back(double(float(s.num)));
        }
    if (!good) throw bad(std::string("metadata ") + kLogitScalesKey + " is missing or not a list of numbers");
    std::vector<double> got = t->second.values();
    if (got != want) {
        std::string g = "[";
        for (size_t k = 0; k < got.size(); ++k) g += (k ? ", " : "") + round6_repr(got[k]);
        throw bad(std::string("metadata ") + kLogitScalesKey + " " + py_repr(listed) + " disagree with the graph's " + g + "]");
    }
    for (double s : got)
        if (!(std::isfinite(s) && s > 0 && s <= kMaxLogitScale))
            throw bad("logit scale " + py_float_repr(s) + " is outside the documented range 0 < s <= 1000");
}

// No external data, no NaN weights, and the file's digest is the one recorded.
void check_weights_and_digest(const ModelInfo& info, const OnnxModel& graph, const std::string& bytes, const BadModel& bad) {
    if (!graph.external.empty())
        throw bad("initializer " + py_repr(head_chars(graph.external[0], 80)) +
                  " keeps its data in an external file, which " + kModelShaKey + " does not cover");
    if (!graph.nan.empty()) throw bad("initializer " + py_repr(head_chars(graph.nan[0], 80)) + " holds NaN values (corrupted weights)");
    auto recorded = info.metadata.find(kModelShaKey);
    if (recorded == info.metadata.end())
        throw bad(std::string("no ") + kModelShaKey + " in the metadata (exported by an older QUASAR, or edited)");
    int entries = 0;
    std::string digest;
    try {
        digest = model_sha256(bytes, entries);
    } catch (const NotOnnx& e) {
        throw bad(std::string("cannot read the model to check its digest (") + e.what() + ")");
    }
    if (entries != 1) throw bad(std::to_string(entries) + " " + kModelShaKey + " entries in the metadata");
    if (recorded->second != digest)
        throw bad(std::string(kModelShaKey) + " " + py_repr(head_chars(recorded->second, 23)) + "... does not match the file (" +
                  digest.substr(0, 23) + "...): the graph or its metadata was changed after export");
}

}  // namespace

void check_graph(ModelInfo& info, const std::string& bytes) {
    const std::string& path = info.path;
    BadModel bad = [&](const std::string& msg) {
        return model_error(path + ": " + msg + "; refusing this model (re-export it with `quasar export onnx`)");
    };
    std::string reason = check_spec_bounds(info.spec);
    if (!reason.empty()) throw bad(reason);
    check_ids(info, bad);
    OnnxModel graph;
    try {
        read_graph(bytes, kHeadPrefix, graph);
    } catch (const NotOnnx& e) {
        throw model_error(path + ": cannot read the graph's initializers (" + e.what() + ")");
    }
    check_precision_and_heads(info, graph, bad);
    check_logit_scales(info, graph, bad);
    check_weights_and_digest(info, graph, bytes, bad);
    for (const auto& vi : graph.inputs)
        if (vi.name == kInputName) {
            info.input_dims = vi.dims;
            info.input_dim_names = vi.dim_names;
        }
}

void check_input_shape(const ModelInfo& info) {
    const auto& d = info.input_dims;
    std::string shape = "[";
    for (size_t i = 0; i < d.size(); ++i)
        shape += (i ? ", " : "") + (d[i] >= 0 ? std::to_string(d[i])
                                              : (i < info.input_dim_names.size() && !info.input_dim_names[i].empty()
                                                     ? py_repr(info.input_dim_names[i]) : std::string("None")));
    shape += "]";
    const std::string& path = info.path;
    if (d.size() != 4 || d[3] != 3)
        throw model_error(path + ": input 'images' must be [N, H, W, 3] (NHWC), is " + shape);
    bool fixed_hw = d[1] > 0 && d[2] > 0;
    const Spec& s = info.spec;
    bool has_hw = s.policy == "fixed" || s.policy == "center_crop";
    int H = s.policy == "fixed" ? s.height : s.isize(), W = s.policy == "fixed" ? s.width : s.isize();
    if (info.dynamic_size) {
        if (fixed_hw) throw model_error(path + ": metadata says dynamic_size=true but the graph input is fixed at " + shape);
    } else if (fixed_hw && has_hw && (d[1] != H || d[2] != W)) {
        const std::string verb = s.policy == "center_crop" ? "crops" : "(policy fixed) makes images";
        throw model_error(path + ": graph input is " + std::to_string(d[1]) + "x" + std::to_string(d[2]) + " but the spec " +
                          verb + " " + std::to_string(H) + "x" + std::to_string(W) +
                          "; refusing this model (re-export it with `quasar export onnx`)");
    } else if (s.policy == "fixed" && !fixed_hw) {
        throw model_error(path + ": the spec's policy 'fixed' needs a graph input fixed at " + std::to_string(H) + "x" +
                          std::to_string(W) + ", is " + shape);
    }
}

bool check_sha256_sidecar(const std::string& path, const std::string& bytes) {
    std::string side = path + ".sha256";
    std::ifstream f(side, std::ios::binary);
    if (!f) {
        if (!file_exists(side)) return false;
        throw model_error(side + ": unreadable hash sidecar (" + std::strerror(errno) + ")");
    }
    std::string text(4096, '\0');
    f.read(&text[0], 4096);
    text.resize(size_t(f.gcount()));
    std::istringstream ss(text);
    std::string digest;
    ss >> digest;
    if (!is_hex64(digest))
        throw model_error(side + ": not a sha256 sidecar (expected '<64 hex digits>  <file name>')");
    Sha256 h;
    h.update(bytes.data(), bytes.size());
    std::string got = h.hexdigest();
    if (got != digest)
        throw model_error(path + ": the file's sha256 " + got.substr(0, 16) + "... does not match the " + digest.substr(0, 16) +
                          "... recorded in " + side + " at export: the file is corrupted; delete both to rebuild it "
                          "(the default model is exported again on next use)");
    return true;
}

bool is_engine_path(const std::string& path) {
    std::string p = path;
    for (auto& c : p) c = char(std::tolower(uint8_t(c)));
    if (ends_with(p, ".engine") || ends_with(p, ".plan") || ends_with(p, ".trt")) return true;
    return !ends_with(p, ".onnx") && file_exists(path + ".json");
}

Json read_engine_sidecar(const std::string& path) {
    std::string side = path + ".json";
    std::ifstream f(side, std::ios::binary);
    if (!f) {
        if (!file_exists(side))
            throw model_error(path + ": TensorRT engine without its metadata sidecar " + side +
                              "; the engine cannot be checked against this machine (rebuild it with quasar export tensorrt)");
        throw model_error(side + ": unreadable engine sidecar (OSError: " + std::strerror(errno) + ")");
    }
    std::stringstream ss;
    ss << f.rdbuf();
    Json d;
    std::string err;
    if (!parse_json(ss.str(), d, err)) throw model_error(side + ": unreadable engine sidecar (JSONDecodeError: " + err + ")");
    const Json* fmt = d.kind == Json::Object ? d.find("format") : nullptr;
    if (!fmt || fmt->kind != Json::String || fmt->str != kEngineSidecarFormat)
        throw model_error(side + ": not a QUASAR engine sidecar (format '" + kEngineSidecarFormat + "')");
    const Json* ver = d.find("format_version");
    int version = 0;
    if (ver && ver->kind == Json::Number && std::isfinite(ver->num)) version = int(ver->num);
    else if (ver && ver->kind == Json::String) {
        long long v;
        if (parse_py_int(ver->str, v)) version = int(std::min<long long>(v, 1 << 20));
    }
    if (version > kEngineSidecarVersion)
        throw model_error(side + ": engine sidecar format version " + (ver ? py_repr(*ver) : "None") +
                          " is newer than this QUASAR reads; upgrade quasar-engine");
    if (version < 1)
        throw model_error(side + ": unknown engine sidecar format version " + (ver ? py_repr(*ver) : "None"));
    return d;
}

std::string json_dumps(const Json& v) {
    switch (v.kind) {
        case Json::Null: return "null";
        case Json::Bool: return v.b ? "true" : "false";
        case Json::Number:
            if (std::isnan(v.num)) return "NaN";
            if (std::isinf(v.num)) return v.num > 0 ? "Infinity" : "-Infinity";
            return py_repr(v);
        case Json::String: {
            std::string out = "\"";
            for (size_t i = 0; i < v.str.size(); ++i) {
                uint8_t c = uint8_t(v.str[i]);
                char buf[8];
                if (c == '"') out += "\\\"";
                else if (c == '\\') out += "\\\\";
                else if (c == '\n') out += "\\n";
                else if (c == '\r') out += "\\r";
                else if (c == '\t') out += "\\t";
                else if (c == '\b') out += "\\b";
                else if (c == '\f') out += "\\f";
                else if (c < 0x20 || c >= 0x7f) {  // ensure_ascii: non-ASCII as \\uXXXX (UTF-16)
                    if (c < 0x80) {
                        std::snprintf(buf, sizeof buf, "\\u%04x", c);
                        out += buf;
                        continue;
                    }
                    unsigned cp = 0;
                    int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
                    cp = c & (0x3F >> extra);
                    for (int k = 0; k < extra && i + 1 < v.str.size(); ++k) cp = (cp << 6) | (uint8_t(v.str[++i]) & 0x3F);
                    if (cp >= 0x10000) {
                        cp -= 0x10000;
                        std::snprintf(buf, sizeof buf, "\\u%04x", 0xD800 + (cp >> 10));
                        out += buf;
                        cp = 0xDC00 + (cp & 0x3FF);
                    }
                    std::snprintf(buf, sizeof buf, "\\u%04x", cp);
                    out += buf;
                } else out += char(c);
            }
            return out + "\"";
        }
        case Json::Array: {
            std::string out = "[";
            for (size_t k = 0; k < v.arr.size(); ++k) out += (k ? ", " : "") + json_dumps(v.arr[k]);
            return out + "]";
        }
        case Json::Object: {
            std::string out = "{";
            for (size_t k = 0; k < v.obj.size(); ++k) {
                Json key;
                key.kind = Json::String;
                key.str = v.obj[k].first;
                out += (k ? ", " : "") + json_dumps(key) + ": " + json_dumps(v.obj[k].second);
            }
            return out + "}";
        }
    }
    return "";
}

std::map<std::string, std::string> engine_metadata(const Json& sidecar, const std::string& side) {
    const Json* d = sidecar.find("onnx_metadata");
    if (!d || d->kind != Json::Object) throw model_error(side + ": the sidecar holds no QUASAR metadata (onnx_metadata)");
    std::map<std::string, std::string> out;
    for (const auto& kv : d->obj) out[kv.first] = kv.second.kind == Json::String ? kv.second.str : json_dumps(kv.second);
    return out;
}

std::vector<std::string> sidecar_mismatches(const Json& sidecar, const std::map<std::string, std::string>& platform,
                                            bool check_gpu_name) {
    std::vector<std::pair<std::string, std::string>> keys = {{"tensorrt_version", "TensorRT version"},
                                                             {"compute_capability", "GPU compute capability"}};
    if (check_gpu_name) keys.emplace_back("gpu_name", "GPU");
    std::vector<std::string> out;
    for (const auto& k : keys) {
        const Json* built = sidecar.find(k.first);
        auto here = platform.find(k.first);
        std::string b = built && built->kind == Json::String ? built->str : "";
        bool built_none = !built || built->kind == Json::Null;
        bool here_none = here == platform.end() || here->second.empty();
        if (built_none && here_none) continue;
        if (!built_none && !here_none && built->kind == Json::String && b == here->second) continue;
        out.push_back(k.second + ": engine built for " + (built_none ? std::string("None") : py_repr(*built)) +
                      ", this machine has " + (here_none ? std::string("None") : py_repr(here->second)));
    }
    return out;
}

static void check_model_stat(const std::string& path, const struct stat& st) {
    if (S_ISDIR(st.st_mode)) throw model_error(path + ": is a directory, not a model file");
    if (!S_ISREG(st.st_mode))  // a FIFO or a device would block the reader or never end
        throw model_error(path + ": not a regular file (a FIFO, socket or device), not a model file");
}

std::string read_model_file(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) throw model_error(path + ": model file not found");
    check_model_stat(path, st);
    std::ifstream f(path, std::ios::binary);
    if (!f) throw model_error(path + ": not an ONNX model or TensorRT engine (" + std::strerror(errno) + ")");
    std::string bytes;
    bytes.resize(size_t(st.st_size));
    f.read(&bytes[0], st.st_size);
    bytes.resize(size_t(f.gcount()));
    return bytes;
}

// The metadata bounds from the file's top-level fields alone, before the whole file is read (a 200 MB
// metadata value is refused after a few small reads). Anything malformed is left to the full reader.
static void prescan_metadata(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return;
    auto varint = [&f](uint64_t& v) {
        return decode_varint([&f]() -> int { int c = f.get(); return c == EOF ? -1 : c; }, v) == VarintRead::Ok;
    };
    size_t entries = 0;
    uint64_t tag, n;
    while (varint(tag)) {
        int wire = int(tag & 7);
        if (wire == 0) {
            if (!varint(n)) return;
        } else if (wire == 1 || wire == 5) {
            f.seekg(wire == 1 ? 8 : 4, std::ios::cur);
        } else if (wire == 2) {
            if (!varint(n) || n > (uint64_t(1) << 40)) return;
            if ((tag >> 3) == 14) {
                if (n > kMaxMetadataValueBytes || ++entries > kMaxMetadataEntries)
                    throw model_error(path + ": " + (n > kMaxMetadataValueBytes
                                                          ? "a metadata entry of " + std::to_string(n) + " bytes is over the " +
                                                                std::to_string(kMaxMetadataValueBytes) + "-byte limit"
                                                          : "more than " + std::to_string(kMaxMetadataEntries) +
                                                                " metadata entries") +
                                      "; refusing this model");
            }
            f.seekg(std::streamoff(n), std::ios::cur);
        } else {
            return;
        }
        if (!f) return;
    }
}

ModelInfo load_model_info(const std::string& path, std::string* bytes_out) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) throw model_error(path + ": model file not found");
    check_model_stat(path, st);
    if (is_engine_path(path)) {
        std::string side = path + ".json";
        ModelInfo info = parse_metadata(engine_metadata(read_engine_sidecar(path), side), path, "engine");
        std::string bytes = read_model_file(path);
        check_sha256_sidecar(path, bytes);
        std::string reason = check_spec_bounds(info.spec);
        if (!reason.empty()) throw model_error(path + ": " + reason + "; refusing this model");
        if (bytes_out) *bytes_out = std::move(bytes);
        return info;
    }
    prescan_metadata(path);
    std::string bytes = read_model_file(path);
    std::map<std::string, std::string> meta;
    try {
        meta = read_metadata_props(bytes);
    } catch (const MetadataTooLarge& e) {
        throw model_error(path + ": " + e.what() + "; refusing this model");
    } catch (const NotOnnx& e) {
        throw model_error(path + ": not an ONNX model or TensorRT engine (" + e.what() + ")");
    }
    ModelInfo info = parse_metadata(meta, path, "onnx");
    check_sha256_sidecar(path, bytes);
    check_graph(info, bytes);
    if (bytes_out) *bytes_out = std::move(bytes);
    return info;
}

}  // namespace quasar
