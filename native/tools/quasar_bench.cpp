// quasar-bench MODEL FILE...: one quasar_score_file call per file, one after another (an app scoring
// single photos: the camera case), after --warmup calls on the first files. Prints one JSON object:
// per-call latencies, wall time, peak resident set (VmHWM), and the scores (for a parity check).
// With --model-only N: the first file is prepared once and only inference is timed, N times.
// Used by benchmarks/native_bench.py.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "quasar.hpp"

static double vm_hwm_mb() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
    return -1;
}

int main(int argc, char** argv) {
    int warmup = 2, first = 2, threads = 0, model_only = 0;
    while (first < argc && argv[first][0] == '-' && argv[first][1] == '-') {
        if (!std::strcmp(argv[first], "--warmup") && first + 1 < argc) warmup = std::atoi(argv[++first]);
        else if (!std::strcmp(argv[first], "--threads") && first + 1 < argc) threads = std::atoi(argv[++first]);
        else if (!std::strcmp(argv[first], "--model-only") && first + 1 < argc) model_only = std::atoi(argv[++first]);
        ++first;
    }
    if (argc < 3 || first >= argc) {
        std::fprintf(stderr, "usage: quasar-bench MODEL [--warmup N] [--threads N] [--model-only N] FILE...\n");
        return 2;
    }
    try {
        auto t_load = std::chrono::steady_clock::now();
        quasar::Options o;
        o.threads = threads;
        quasar::Scorer s(argv[1], o);
        double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
        std::vector<std::string> files(argv + first, argv + argc);
        if (model_only > 0) {
            quasar::Image img = s.prepare_file(files[0]);
            for (int i = 0; i < warmup; ++i) s.score_images({&img});
            std::vector<double> lat;
            for (int i = 0; i < model_only; ++i) {
                auto a = std::chrono::steady_clock::now();
                s.score_images({&img});
                lat.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
            }
            std::printf("{\"latencies_ms\": [");
            for (size_t i = 0; i < lat.size(); ++i) std::printf("%s%.3f", i ? ", " : "", lat[i]);
            std::printf("], \"vmhwm_mb\": %.1f}\n", vm_hwm_mb());
            return 0;
        }
        for (int i = 0; i < warmup && i < int(files.size()); ++i) s.score_file(files[size_t(i)]);
        std::vector<double> lat;
        std::vector<float> quality;
        const size_t q = s.heads().size() - 1;
        auto t0 = std::chrono::steady_clock::now();
        for (const auto& f : files) {
            auto a = std::chrono::steady_clock::now();
            quasar::Scores r = s.score_file(f);
            lat.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
            quality.push_back(r.scores[q]);
        }
        double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("{\"load_s\": %.4f, \"wall_s\": %.4f, \"vmhwm_mb\": %.1f, \"latencies_ms\": [", load_s, wall, vm_hwm_mb());
        for (size_t i = 0; i < lat.size(); ++i) std::printf("%s%.3f", i ? ", " : "", lat[i]);
        std::printf("], \"quality\": [");
        for (size_t i = 0; i < quality.size(); ++i) std::printf("%s%.7f", i ? ", " : "", double(quality[i]));
        std::printf("]}\n");
    } catch (const quasar::Exception& e) {
        std::fprintf(stderr, "quasar-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
