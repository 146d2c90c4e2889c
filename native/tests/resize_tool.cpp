// quasar-resize-tool IN.raw H W OUT_H OUT_W INTERP OUT.raw: the library's Pillow-style resize of a
// raw RGB file, for resample_parity.py (which compares it with Pillow itself).
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "resample.hpp"

int main(int argc, char** argv) {
    if (argc != 8) {
        std::cerr << "usage: quasar-resize-tool IN.raw H W OUT_H OUT_W INTERP OUT.raw\n";
        return 2;
    }
    int h = std::atoi(argv[2]), w = std::atoi(argv[3]), oh = std::atoi(argv[4]), ow = std::atoi(argv[5]);
    cv::Mat in(h, w, CV_8UC3);
    std::ifstream f(argv[1], std::ios::binary);
    f.read(reinterpret_cast<char*>(in.data), std::streamsize(in.total() * 3));
    if (!f) return 1;
    cv::Mat out = quasar::pil_resize(in, ow, oh, argv[6]);
    if (!out.isContinuous()) out = out.clone();
    std::ofstream g(argv[7], std::ios::binary);
    g.write(reinterpret_cast<const char*>(out.data), std::streamsize(out.total() * 3));
    return g ? 0 : 1;
}
