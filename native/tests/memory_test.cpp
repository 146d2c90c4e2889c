// Flat memory over many images: scores N images (default 2,000) through every entry point of the
// public API (encoded JPEG and PNG bytes of varied sizes, raw pixels, prepared batches, and broken
// inputs that fail) and checks that the resident set size after the run is within a bound of what
// it was after a warm-up. Prints the figures.
//
//     quasar-memory-test MODEL.onnx [N] [MAX_GROWTH_MB]
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "quasar.hpp"

static double rss_mb() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
    return -1;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: quasar-memory-test MODEL [N] [MAX_GROWTH_MB]\n";
        return 2;
    }
    const int n = argc > 2 ? std::atoi(argv[2]) : 2000;
    const double max_growth = argc > 3 ? std::atof(argv[3]) : 16.0;
    quasar::Scorer scorer(argv[1]);
    std::mt19937 rng(7);
    std::vector<std::vector<uchar>> encoded;  // 40 distinct images, JPEG and PNG, 64..640 px
    std::vector<cv::Mat> raw;
    for (int i = 0; i < 40; ++i) {
        int w = 64 + int(rng() % 577), h = 64 + int(rng() % 577);
        cv::Mat img(h, w, CV_8UC3);
        cv::randu(img, 0, 256);
        cv::GaussianBlur(img, img, cv::Size(0, 0), 1 + i % 5);
        std::vector<uchar> buf;
        cv::imencode(i % 2 ? ".png" : ".jpg", img, buf);
        encoded.push_back(buf);
        raw.push_back(img);
    }
    const std::string garbage = "\xff\xd8\xff\xe0 not really a JPEG";
    const int warmup = std::min(200, n / 4);
    double before = 0;
    long scored = 0, failed = 0;
    for (int i = 0; i < n; ++i) {
        if (i == warmup) before = rss_mb();
        const size_t j = size_t(i) % encoded.size();
        try {
            switch (i % 4) {
                case 0: scorer.score_buffer(encoded[j].data(), encoded[j].size()); break;
                case 1: scorer.score_pixels(raw[j].data, raw[j].cols, raw[j].rows, raw[j].step, QUASAR_PIXEL_BGR); break;
                case 2: {
                    quasar::Image a = scorer.prepare_buffer(encoded[j].data(), encoded[j].size());
                    quasar::Image b = scorer.prepare_buffer(encoded[(j + 1) % encoded.size()].data(), encoded[(j + 1) % encoded.size()].size());
                    scorer.score_images({&a, &b});
                    break;
                }
                default: scorer.score_buffer(garbage.data(), garbage.size()); break;
            }
            ++scored;
        } catch (const quasar::Exception& e) {
            if (e.status() != QUASAR_ERR_IMAGE) {
                std::cerr << "unexpected failure: " << e.what() << "\n";
                return 1;
            }
            ++failed;
        }
    }
    const double after = rss_mb();
    std::printf("memory_test: %d inputs (%ld scored, %ld refused), RSS %.1f MB after %d, %.1f MB after %d: growth %.2f MB "
                "(bound %.1f MB)\n", n, scored, failed, before, warmup, after, n, after - before, max_growth);
    if (failed != n / 4 + (n % 4 > 3)) {
        std::cerr << "expected every fourth input (broken) to be refused\n";
        return 1;
    }
    return after - before <= max_growth ? 0 : 1;
}
