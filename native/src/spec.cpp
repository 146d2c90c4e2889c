#include "spec.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>
#include <vector>

#include "errors.hpp"

namespace quasar {

namespace {

const std::vector<std::string> kPolicies = {"center_crop", "native", "short_side", "fixed"};
const std::vector<std::string> kInterpolations = {"bicubic", "bilinear", "area", "nearest"};
const std::vector<std::string> kResamplers = {"pil", "opencv_area"};
const std::vector<std::string> kFits = {"stretch", "crop"};
const std::set<std::string> kFields = {"policy", "size", "interpolation", "mean", "std", "channel_order",
                                       "size_multiple", "min_size", "resampler", "version", "height", "width", "fit"};

std::string tuple_repr(const std::vector<std::string>& v) {
    std::string out = "(";
    for (size_t k = 0; k < v.size(); ++k) out += (k ? ", " : "") + py_repr(v[k]);
    return out + (v.size() == 1 ? ",)" : ")");
}

bool in(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

std::string str_field(const Json& v, const char* name) {
    if (v.kind != Json::String) throw std::invalid_argument(std::string(name) + " must be a string, not " + py_repr(v));
    return v.str;
}

double num_field(const Json& v, const char* name) {
    if (v.kind == Json::Bool) return v.b ? 1 : 0;
    if (v.kind != Json::Number) throw std::invalid_argument(std::string("'<' not supported for ") + name + " " + py_repr(v));
    return v.num;
}

}  // namespace

long long py_round(double v) { return (long long)std::nearbyint(v); }

namespace {

// The spec's version (newer than this build: refused) after refusing unknown fields.
int spec_version(const Json& d) {
    const Json* ver = d.find("version");
    int version = kSpecVersion;
    if (ver) {
        if (ver->kind != Json::Number || !std::isfinite(ver->num)) throw std::invalid_argument("bad preprocess spec version " + py_repr(*ver));
        version = int(std::trunc(ver->num));
    }
    if (version > kSpecVersion)
        throw std::invalid_argument("preprocess spec version " + std::to_string(version) + " is newer than this QUASAR (" +
                                    std::to_string(kSpecVersion) + ")");
    std::vector<std::string> unknown;
    for (const auto& kv : d.obj)
        if (!kFields.count(kv.first)) unknown.push_back(kv.first);
    if (!unknown.empty()) {
        std::sort(unknown.begin(), unknown.end());
        unknown.erase(std::unique(unknown.begin(), unknown.end()), unknown.end());
        std::string list = "[";
        for (size_t k = 0; k < unknown.size(); ++k) list += (k ? ", " : "") + py_repr(unknown[k]);
        throw std::invalid_argument("unknown preprocess spec fields: " + list + "]");
    }
    return version;
}

void read_normalisation(const std::string& k, const Json& v, Spec& s) {
    if (v.kind != Json::Array) throw std::invalid_argument(k + " must be a list of numbers, got " + py_repr(v));
    auto& arr = k == "mean" ? s.mean : s.std;
    (k == "mean" ? s.mean_len : s.std_len) = v.arr.size();
    for (size_t i = 0; i < v.arr.size() && i < 3; ++i) {
        if (v.arr[i].kind != Json::Number) throw std::invalid_argument("could not convert " + py_repr(v.arr[i]) + " to float");
        arr[i] = v.arr[i].num;
    }
}

void read_fields(const Json& d, Spec& s) {
    for (const auto& kv : d.obj) {
        const std::string& k = kv.first;
        const Json& v = kv.second;
        if (k == "policy") s.policy = str_field(v, "policy");
        else if (k == "size") s.size = num_field(v, "size");
        else if (k == "interpolation") s.interpolation = str_field(v, "interpolation");
        else if (k == "channel_order") s.channel_order = str_field(v, "channel_order");
        else if (k == "size_multiple") s.size_multiple = num_field(v, "size_multiple");
        else if (k == "min_size") s.min_size = num_field(v, "min_size");
        else if (k == "resampler") s.resampler = str_field(v, "resampler");
        else if (k == "fit") s.fit = v.kind == Json::String ? v.str : "";
        else if (k == "height" || k == "width") {
            if (v.kind == Json::Number && v.is_int) (k == "height" ? s.height : s.width) = int(std::max(-1.0, std::min(1e9, v.num)));
        } else if (k == "mean" || k == "std") {
            read_normalisation(k, v, s);
        }
    }
}

// PreprocessSpec.__post_init__
void check_fields(const Json& d, const Spec& s) {
    if (!in(kPolicies, s.policy))
        throw std::invalid_argument("unknown resize policy " + py_repr(s.policy) + "; expected one of " + tuple_repr(kPolicies));
    if (!in(kInterpolations, s.interpolation))
        throw std::invalid_argument("unknown interpolation " + py_repr(s.interpolation) + "; expected one of " +
                                    tuple_repr(kInterpolations));
    if (s.channel_order != "RGB" && s.channel_order != "BGR")
        throw std::invalid_argument("channel_order must be RGB or BGR, not " + py_repr(s.channel_order));
    if (!in(kResamplers, s.resampler))
        throw std::invalid_argument("unknown resampler " + py_repr(s.resampler) + "; expected one of " + tuple_repr(kResamplers));
    if (s.size < 1 || s.size_multiple < 1) throw std::invalid_argument("size and size_multiple must be positive");
    const Json* jh = d.find("height");
    const Json* jw = d.find("width");
    const Json* jf = d.find("fit");
    auto is_null = [](const Json* v) { return !v || v->kind == Json::Null; };
    if (s.policy == "fixed") {
        bool ok = true;
        for (const Json* v : {jh, jw})
            if (is_null(v) || v->kind != Json::Number || !v->is_int || v->num < 1) ok = false;
        if (!ok)
            throw std::invalid_argument("policy 'fixed' needs integer height and width >= 1, got (" +
                                        (jh ? py_repr(*jh) : "None") + ", " + (jw ? py_repr(*jw) : "None") + ")");
        if (is_null(jf) || jf->kind != Json::String || !in(kFits, jf->str))
            throw std::invalid_argument("policy 'fixed' needs fit in " + tuple_repr(kFits) + ", not " +
                                        (jf ? py_repr(*jf) : "None"));
    } else if (!is_null(jh) || !is_null(jw) || !is_null(jf)) {
        throw std::invalid_argument("height, width and fit apply to policy 'fixed' only, not " + py_repr(s.policy));
    }
}

}  // namespace

Spec parse_spec(const std::string& text) {
    Json d;
    std::string err;
    if (!parse_json(text, d, err)) throw std::invalid_argument(err);
    if (d.kind != Json::Object) throw std::invalid_argument("'" + std::string(d.kind == Json::Array ? "list" : "str") +
                                                            "' object has no attribute 'items'");
    Spec s;
    int version = spec_version(d);
    if (version < 2) s.resampler = "opencv_area";  // version 1 specs always shrank with INTER_AREA
    s.version = kSpecVersion;
    read_fields(d, s);
    check_fields(d, s);
    return s;
}

std::string check_spec_bounds(const Spec& s) {
    auto is_int = [](double v) { return std::isfinite(v) && v == std::trunc(v); };
    char buf[256];
    if (!is_int(s.size) || !is_int(s.min_size) || !is_int(s.size_multiple)) {
        std::snprintf(buf, sizeof buf, "preprocess size, min_size and size_multiple must be integers, not (%s, %s, %s)",
                      py_float_repr(s.size).c_str(), py_float_repr(s.min_size).c_str(), py_float_repr(s.size_multiple).c_str());
        return buf;
    }
    if (s.mean_len != 3 || s.std_len != 3) return "preprocess mean and std need 3 values each";
    if (s.size < kMinSpecSize || s.size > kMaxSpecSize)
        return "preprocess size " + std::to_string(s.isize()) + " is outside " + std::to_string(kMinSpecSize) + ".." +
               std::to_string(kMaxSpecSize);
    if (s.min_size < 1 || s.min_size > s.size)
        return "preprocess min_size " + std::to_string(int(s.min_size)) + " is outside 1..size (" + std::to_string(s.isize()) + ")";
    if (s.size_multiple < 1 || s.size_multiple > s.size)
        return "preprocess size_multiple " + std::to_string(int(s.size_multiple)) + " is outside 1..size (" +
               std::to_string(s.isize()) + ")";
    for (int k = 0; k < 3; ++k)
        if (!std::isfinite(s.mean[k]) || !std::isfinite(s.std[k]) || !(s.std[k] > 0))
            return "preprocess mean / std must be finite, std positive";
    return "";
}

int max_resized_side(const Spec& s) {
    if (s.policy == "fixed") return kMaxAspectRatio * std::max(s.height, s.width);
    return s.policy == "native" ? s.isize() : kMaxAspectRatio * s.isize();
}

static int round_multiple(long long v, int m) { return int(std::max<long long>(m, v / m * m)); }

Target target_shape(int height, int width, const Spec& s) {
    if (height < 1 || width < 1)
        throw ImageError("image has no pixels (" + std::to_string(height) + "x" + std::to_string(width) + ")");
    Target t;
    const int size = s.isize(), m = int(s.size_multiple), mn = std::min(height, width), mx = std::max(height, width);
    long long rh, rw;
    if (s.policy == "center_crop") {
        double scale = double(size) / mn;
        rh = std::max<long long>(size, py_round(height * scale));
        rw = std::max<long long>(size, py_round(width * scale));
        t.crop = true;
        t.ch = t.cw = size;
    } else if (s.policy == "fixed") {
        if (s.fit == "stretch") {
            rh = s.height;
            rw = s.width;
        } else {  // crop: cover height x width keeping the aspect ratio, then crop the centre
            double scale = std::max(double(s.width) / width, double(s.height) / height);
            rh = std::max<long long>(s.height, py_round(height * scale));
            rw = std::max<long long>(s.width, py_round(width * scale));
            t.crop = true;
            t.ch = s.height;
            t.cw = s.width;
        }
    } else {
        double scale = s.policy == "native" ? std::min(1.0, double(size) / mx) : double(size) / mn;
        if (mn * scale < s.min_size) scale = s.min_size / mn;
        rh = round_multiple(py_round(height * scale), m);
        rw = round_multiple(py_round(width * scale), m);
    }
    long long limit = max_resized_side(s);
    if (s.policy == "fixed" && !t.crop) {  // stretch: refused by the same rule as crop (the covering size)
        double scale = std::max(double(s.width) / width, double(s.height) / height);
        long long ch = std::max<long long>(s.height, py_round(height * scale));
        long long cw = std::max<long long>(s.width, py_round(width * scale));
        if (std::max(ch, cw) > limit) {
            rh = ch;
            rw = cw;
        }
    }
    if (std::max(rh, rw) > limit) {
        double ratio = double(mx) / mn;
        char buf[400];
        std::snprintf(buf, sizeof buf,
                      "extreme aspect ratio (%dx%d, %.0f:1): the model's %s preprocessing (size %d, min size %d) would make "
                      "it %lldx%lld, over its %lld px bound; crop the image first",
                      width, height, ratio, s.policy.c_str(), size, int(s.min_size), rw, rh, limit);
        throw ImageError(buf);
    }
    t.rh = int(rh);
    t.rw = int(rw);
    if (t.crop) {
        if (s.policy == "center_crop") {  // torchvision-style rounded offsets
            t.top = int(std::max<long long>(0, py_round((rh - t.ch) / 2.0)));
            t.left = int(std::max<long long>(0, py_round((rw - t.cw) / 2.0)));
        } else {  // the static contract: floor
            t.top = int((rh - t.ch) / 2);
            t.left = int((rw - t.cw) / 2);
        }
    }
    return t;
}

}  // namespace quasar
