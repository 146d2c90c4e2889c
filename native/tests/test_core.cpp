// Unit tests of the library's pieces that need no model: JSON and Python-style number text, SHA-256,
// specs and target shapes, header probing, EXIF, pixel input, the protobuf reader, and the CLI's path
// text and CSV/JSON rows. Each check prints its failure; the exit status is the number of failures.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "contract.hpp"
#include "decode.hpp"
#include "errors.hpp"
#include "json.hpp"
#include "onnx_reader.hpp"
#include "output.hpp"
#include "pathtext.hpp"
#include "probe.hpp"
#include "sha256.hpp"
#include "spec.hpp"
#include "walk.hpp"

static int g_failed = 0, g_checks = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        ++g_checks;                                                                 \
        if (!(cond)) {                                                              \
            ++g_failed;                                                             \
            std::cerr << __FILE__ << ":" << __LINE__ << ": FAILED " #cond "\n";     \
        }                                                                           \
    } while (0)

#define CHECK_EQ(a, b)                                                                                       \
    do {                                                                                                     \
        ++g_checks;                                                                                          \
        auto va = (a);                                                                                       \
        auto vb = (b);                                                                                       \
        if (!(va == vb)) {                                                                                   \
            ++g_failed;                                                                                      \
            std::cerr << __FILE__ << ":" << __LINE__ << ": FAILED " #a " == " #b ": " << va << " vs " << vb << "\n"; \
        }                                                                                                    \
    } while (0)

static std::string throws(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

static void test_json() {
    using quasar::py_float_repr;
    CHECK_EQ(py_float_repr(0.0), "0.0");
    CHECK_EQ(py_float_repr(1.0), "1.0");
    CHECK_EQ(py_float_repr(0.1), "0.1");
    CHECK_EQ(py_float_repr(1e-05), "1e-05");
    CHECK_EQ(py_float_repr(0.0001), "0.0001");
    CHECK_EQ(py_float_repr(1e16), "1e+16");
    CHECK_EQ(py_float_repr(123456789012345.0), "123456789012345.0");
    CHECK_EQ(py_float_repr(double(0.1f)), "0.10000000149011612");
    CHECK_EQ(py_float_repr(-2.5e-7), "-2.5e-07");
    CHECK_EQ(py_float_repr(17.741769790649414), "17.741769790649414");
    quasar::Json j;
    std::string err;
    CHECK(quasar::parse_json("{\"a\": [1, 2.5, \"x\\u00e9\\ud83d\\ude00\"], \"b\": null, \"c\": true}", j, err));
    CHECK_EQ(quasar::py_repr(j), "{'a': [1, 2.5, 'x\xc3\xa9\xf0\x9f\x98\x80'], 'b': None, 'c': True}");
    CHECK(!quasar::parse_json("[1, 2", j, err));
    CHECK(!quasar::parse_json("[1] x", j, err));
    CHECK(quasar::parse_json("[NaN, -Infinity]", j, err) && std::isnan(j.arr[0].num) && std::isinf(j.arr[1].num));
    CHECK_EQ(quasar::py_repr(std::string("it's")), "\"it's\"");
}

static void test_sha256() {
    quasar::Sha256 a;
    CHECK_EQ(a.hexdigest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    quasar::Sha256 b;
    b.update("abc", 3);
    CHECK_EQ(b.hexdigest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    quasar::Sha256 c;
    std::string million(1000000, 'a');
    c.update(million.data(), 500001);
    c.update(million.data() + 500001, million.size() - 500001);
    CHECK_EQ(c.hexdigest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_spec() {
    using quasar::parse_spec;
    const std::string fixed =
        R"({"channel_order": "RGB", "fit": "stretch", "height": 384, "interpolation": "bicubic", "mean": [0.5, 0.5, 0.5], )"
        R"("min_size": 64, "policy": "fixed", "resampler": "pil", "size": 512, "size_multiple": 32, "std": [0.5, 0.5, 0.5], )"
        R"("version": 2, "width": 512})";
    quasar::Spec s = parse_spec(fixed);
    CHECK(s.fixed_size() && s.height == 384 && s.width == 512 && s.fit == "stretch");
    CHECK_EQ(quasar::check_spec_bounds(s), "");
    quasar::Target t = quasar::target_shape(3000, 4000, s);
    CHECK(t.rh == 384 && t.rw == 512 && !t.crop);
    s.fit = "crop";
    t = quasar::target_shape(1000, 1000, s);  // cover 384x512: scale 0.512 -> 512x512, crop rows (512-384)/2
    CHECK(t.rh == 512 && t.rw == 512 && t.crop && t.top == 64 && t.left == 0 && t.ch == 384 && t.cw == 512);
    t = quasar::target_shape(101, 300, s);  // scale max(512/300, 384/101) = 3.80198 -> 384 x round(1140.59) = 1141
    CHECK(t.rh == 384 && t.rw == 1141 && t.left == 314 && t.top == 0);
    CHECK(throws([&] { quasar::target_shape(10, 20000, s); }).find("extreme aspect ratio (20000x10, 2000:1)") == 0);
    quasar::Spec native = parse_spec(R"({"policy": "native", "size": 512, "size_multiple": 32, "min_size": 64})");
    t = quasar::target_shape(576, 768, native);
    CHECK(t.rh == 384 && t.rw == 512);
    t = quasar::target_shape(10, 10, native);
    CHECK(t.rh == 64 && t.rw == 64);
    quasar::Spec crop = parse_spec(R"({"policy": "center_crop", "size": 224})");
    t = quasar::target_shape(480, 641, crop);  // round-half-even of 298.9 and the centre offset round(37.5) = 38
    CHECK(t.rh == 224 && t.rw == 299 && t.left == 38 && t.top == 0);
    CHECK_EQ(quasar::py_round(2.5), 2LL);
    CHECK_EQ(quasar::py_round(3.5), 4LL);
    CHECK_EQ(throws([] { parse_spec(R"({"policy": "fixed", "height": 384, "width": 512})"); }),
             "policy 'fixed' needs fit in ('stretch', 'crop'), not None");
    CHECK_EQ(throws([] { parse_spec(R"({"policy": "native", "fit": "crop"})"); }),
             "height, width and fit apply to policy 'fixed' only, not 'native'");
    CHECK_EQ(throws([] { parse_spec(R"({"policy": "fixed", "height": 0, "width": 512, "fit": "crop"})"); }),
             "policy 'fixed' needs integer height and width >= 1, got (0, 512)");
    CHECK_EQ(throws([] { parse_spec(R"({"zoom": 1, "policy": "native"})"); }), "unknown preprocess spec fields: ['zoom']");
    CHECK_EQ(throws([] { parse_spec(R"({"version": 3})"); }), "preprocess spec version 3 is newer than this QUASAR (2)");
    CHECK_EQ(parse_spec(R"({"version": 1})").resampler, "opencv_area");
}

static std::string encode(const cv::Mat& m, const char* ext) {
    std::vector<uchar> buf;
    cv::imencode(ext, m, buf);
    return std::string(buf.begin(), buf.end());
}

static void test_probe() {
    cv::Mat img(30, 50, CV_8UC3, cv::Scalar(10, 200, 30));
    for (const char* ext : {".jpg", ".png", ".bmp", ".webp", ".tiff", ".ppm", ".hdr"}) {
        cv::Mat m = img;
        if (std::string(ext) == ".hdr") img.convertTo(m, CV_32FC3, 1.0 / 255);
        std::string data = encode(m, ext);
        quasar::Header h = quasar::probe(reinterpret_cast<const uint8_t*>(data.data()), data.size());
        CHECK(h.has_size && h.width == 50 && h.height == 30);
        if (!(h.has_size && h.width == 50 && h.height == 30)) std::cerr << "  format " << ext << "\n";
    }
    const uint8_t text[] = "<html>";
    CHECK_EQ(quasar::sniff(text, 6), "");
    CHECK_EQ(quasar::py_bytes_repr(reinterpret_cast<const uint8_t*>("\x89PNG\r\n\x1a\n"), 8), "b'\\x89PNG\\r\\n\\x1a\\n'");
    std::string exif = std::string("Exif\0\0", 6) + std::string("MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0", 26);
    CHECK_EQ(quasar::exif_orientation(exif), 6);
    CHECK_EQ(quasar::exif_orientation(""), 1);
}

static void test_decode() {
    // Decompression bombs are refused from the header; a cut-off JPEG is refused as truncated.
    std::string png = encode(cv::Mat(20, 30, CV_8UC3, cv::Scalar(1, 2, 3)), ".png");
    std::string err = throws([&] { quasar::decode(reinterpret_cast<const uint8_t*>(png.data()), png.size(), 500, nullptr); });
    CHECK_EQ(err, "image is 30x20 = 0.0 MP, over the 0.0 MP limit (decompression-bomb guard; raise max_pixels to allow it)");
    std::string jpg = encode(cv::Mat(64, 64, CV_8UC3, cv::Scalar(9, 9, 9)), ".jpg");
    err = throws([&] { quasar::decode(reinterpret_cast<const uint8_t*>(jpg.data()), jpg.size() - 10, -1, nullptr); });
    CHECK_EQ(err, "truncated JPEG (no end-of-image marker; the file was cut short)");
    err = throws([&] { quasar::decode(reinterpret_cast<const uint8_t*>(""), 0, -1, nullptr); });
    CHECK_EQ(err, "empty file (0 bytes)");
    // Pixels with a row stride and alpha: composited on white exactly, (c*a + 255*(255-a) + 127) // 255.
    std::vector<uint8_t> px = {10, 20, 30, 0, 200, 100, 50, 128, 99, 99, 99, 99,  // 2 BGRA pixels + row padding
                               1, 2, 3, 255, 4, 5, 6, 255, 0, 0, 0, 0};
    quasar::Decoded d = quasar::from_pixels(px.data(), 2, 2, 12, quasar::PixelFormat::BGRA, -1);
    CHECK(d.image.type() == CV_8UC3 && d.image.rows == 2 && d.image.cols == 2);
    const uint8_t* p = d.image.ptr<uint8_t>(0);
    CHECK(p[0] == 255 && p[1] == 255 && p[2] == 255);                                     // alpha 0: white
    CHECK(p[3] == (50 * 128 + 255 * 127 + 127) / 255 && p[5] == (200 * 128 + 255 * 127 + 127) / 255);  // R from B..
    CHECK(d.image.ptr<uint8_t>(1)[0] == 3 && d.image.ptr<uint8_t>(1)[5] == 4);
    CHECK(throws([&] { quasar::from_pixels(px.data(), 4, 2, 12, quasar::PixelFormat::BGRA, -1); }).find("row stride 12") == 0);
    int need_h = 384, need_w = 512;
    quasar::MinShape ms = [&](int, int, int& h, int& w) { h = need_h; w = need_w; };
    CHECK_EQ(quasar::choose_reduction(3000, 4000, ms), 4);
    CHECK_EQ(quasar::choose_reduction(3073, 4097, ms), 8);
    CHECK_EQ(quasar::choose_reduction(500, 700, ms), 1);
}

static void put_varint(std::string& out, uint64_t v) {
    while (v >= 0x80) {
        out += char(v | 0x80);
        v >>= 7;
    }
    out += char(v);
}
static std::string field(int num, const std::string& payload) {
    std::string out;
    put_varint(out, uint64_t(num) << 3 | 2);
    put_varint(out, payload.size());
    return out + payload;
}

static void test_onnx_reader() {
    std::string entry = field(1, "quasar.format") + field(2, "quasar-fused-model");
    std::string tensor = field(8, "quasar.logit_scales");
    put_varint(tensor, 1 << 3 | 0);  // dims: 2
    put_varint(tensor, 2);
    put_varint(tensor, 2 << 3 | 0);  // data_type float
    put_varint(tensor, 1);
    float vals[2] = {30.0f, 40.5f};
    tensor += field(9, std::string(reinterpret_cast<const char*>(vals), 8));
    std::string model;
    put_varint(model, 1 << 3 | 0);  // ir_version 8
    put_varint(model, 8);
    model += field(7, field(5, tensor)) + field(14, entry);
    auto meta = quasar::read_metadata_props(model);
    CHECK_EQ(meta["quasar.format"], "quasar-fused-model");
    quasar::OnnxModel g;
    quasar::read_graph(model, "quasar.", g);
    CHECK(g.head_tensors.count("quasar.logit_scales") == 1);
    auto v = g.head_tensors["quasar.logit_scales"].values();
    CHECK(v.size() == 2 && v[0] == 30.0 && v[1] == 40.5);
    CHECK_EQ(throws([&] { quasar::read_metadata_props(model.substr(0, model.size() - 3)); }), "field runs past the end of the file");
    CHECK_EQ(throws([] { quasar::read_metadata_props(""); }), "empty file");
}

// The one varint decoder: every width up to 64 bits, a truncated and an over-long varint.
static void test_varint() {
    for (uint64_t v : {uint64_t(0), uint64_t(127), uint64_t(128), uint64_t(300), uint64_t(1) << 35, ~uint64_t(0)}) {
        std::string b = "x";
        put_varint(b, v);
        size_t i = 1;
        CHECK(quasar::read_varint(b, i, b.size()) == v && i == b.size());
    }
    size_t i = 0;
    CHECK_EQ(throws([&] { quasar::read_varint("\x80\x80", i, 2); }), "truncated varint");
    i = 0;
    const std::string eleven(11, '\x80');
    CHECK_EQ(throws([&] { quasar::read_varint(eleven, i, eleven.size()); }), "varint too long");
    i = 0;
    CHECK_EQ(throws([&] { quasar::read_varint("\x05", i, 0); }), "truncated varint");  // nothing before end
}

static void test_cli_text() {
    using namespace quasar_cli;
    CHECK_EQ(encode_text("a\\b\x01\xff\xc3\xa9\n"), "a\\\\b\\x01\\xff\xc3\xa9\\x0a");
    CHECK_EQ(decode_text("a\\\\b\\x01\\xff\xc3\xa9\\x0a"), "a\\b\x01\xff\xc3\xa9\n");
    CHECK_EQ(decode_text("lone\\ backslash"), "lone\\ backslash");
    CHECK_EQ(encode_text("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // an encoded surrogate is not UTF-8
    CHECK_EQ(normpath("//a/./b/../c/"), "//a/c");
    CHECK_EQ(normpath("///a"), "/a");
    CHECK_EQ(normpath("../x/../../y"), "../../y");
    CHECK_EQ(normpath("/.."), "/");
    CHECK_EQ(resume_key("<bytes 0>"), "<bytes 0>");
    CHECK(has_image_extension("a.JPG") && has_image_extension(".x.png") && !has_image_extension(".png") &&
          !has_image_extension("a.") && !has_image_extension("a.txt"));
    CHECK_EQ(py_list_repr({"path", "it's"}), "['path', \"it's\"]");
    CHECK_EQ(infer_format("x.NDJSON", ""), "jsonl");
}

int main() {
    test_json();
    test_sha256();
    test_spec();
    test_probe();
    test_decode();
    test_onnx_reader();
    test_varint();
    test_cli_text();
    std::cout << "test_core: " << g_checks - g_failed << " of " << g_checks << " checks passed\n";
    return g_failed ? 1 : 0;
}
