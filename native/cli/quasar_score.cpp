// quasar-score: the native `quasar score`. Same columns, rows, per-file errors, --resume and exit
// status as the Python CLI (quasar/runtime/cli.py); decoding runs on a thread pool, inference on
// the main thread, rows come out in input order and are flushed as they are written.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/core/utils/logger.hpp>

#include "output.hpp"
#include "pathtext.hpp"
#include "quasar.hpp"
#include "walk.hpp"

using namespace quasar_cli;

namespace {

constexpr int kMaxListed = 20;
std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted = true; }

const char* kUsage =
    "usage: quasar-score [-h] [--version] [-r] [--follow-links] [--model FILE] [-o OUT] [--format {csv,jsonl}]\n"
    "                    [--batch-size N] [--workers N] [--threads N] [--backend {auto,opencv,tensorrt,onnxruntime}]\n"
    "                    [--resume] [--margins] [--explain] [--max-pixels N] [--no-reduced-decode] [--strict] [-q]\n"
    "                    PATH [PATH ...]\n";

const char* kHelp =
    "\nScore image files and folders with a QUASAR fused model (the native twin of `quasar score`). One\n"
    "output row per input: path, one P(good) column per head, error. Every path named on the command\n"
    "line gets a row (a folder with no images gets an error row). Rows are flushed as they are written;\n"
    "--resume skips paths already in the output file.\n\n"
    "positional arguments:\n"
    "  PATH                  image files and/or folders\n\n"
    "options:\n"
    "  -h, --help            show this help message and exit\n"
    "  --version             print the version and the backends built in, and exit\n"
    "  -r, --recursive       descend into sub-folders\n"
    "  --follow-links        with -r, follow every symlinked sub-folder (default: only those pointing\n"
    "                        inside the folder being scanned)\n"
    "  --model FILE          fused ONNX model (a static graph for OpenCV DNN) or TensorRT engine\n"
    "                        (default: $QUASAR_MODEL)\n"
    "  -o, --output OUT      out.csv, out.jsonl or - for stdout (CSV) (default: -); refused when it is an\n"
    "                        input or has an image extension; written through a temporary file (with\n"
    "                        --resume: appended in place) and locked while written\n"
    "  --format {csv,jsonl}  override the format inferred from OUT\n"
    "  --batch-size N        images per inference call (default and maximum: the graph's batch)\n"
    "  --workers N           decode/preprocess threads (default: CPU cores, at most 8)\n"
    "  --threads N           inference threads (default: OpenCV's choice)\n"
    "  --backend B           auto, opencv, tensorrt (engine files) or onnxruntime (if built in)\n"
    "  --resume              append to OUT, skipping paths it already has\n"
    "  --margins             also write <head>_margin columns (cos_good - cos_bad)\n"
    "  --explain             also write the explanation heads and a reason column\n"
    "  --max-pixels N        decompression-bomb limit per image in pixels, checked from the header\n"
    "                        before decoding (default: about 179 MP)\n"
    "  --no-reduced-decode   always decode JPEGs at full resolution\n"
    "  --strict              exit 1 if any input failed (default: only if none was scored)\n"
    "  -q, --quiet           no warnings or summary on stderr\n\n"
    "exit status:\n"
    "  0    at least one input was scored (failed inputs are rows with an error and are listed on stderr)\n"
    "  1    no input was scored (all already done with --resume is 0); with --strict, any input failed\n"
    "  2    bad arguments, an unusable model or an unwritable output file (one line on stderr)\n"
    "  130  interrupted (rows written so far are kept; continue with --resume)\n";

struct Args {
    std::vector<std::string> paths;
    bool follow_links = false;
    bool recursive = false, resume = false, margins = false, explain = false, no_reduced = false, strict = false,
         quiet = false;
    std::string model, output = "-", format, backend = "auto";
    int batch_size = 0, workers = 0, threads = 0;
    long long max_pixels = 0;
};

constexpr float kReasonBelow = 0.6f;  // quasar/runtime/explain.py REASON_BELOW (level 2 on the heads' scale)

// The `reason` of --explain: the family head with the lowest score (ties: the first name in sort order,
// as Python's min over (score, name)) when that score is below kReasonBelow, else "".
std::string weakest_family(const std::vector<float>& scores, const std::vector<size_t>& families,
                           const std::vector<std::string>& names) {
    const std::string* best = nullptr;
    float low = 0.f;
    for (size_t i : families)
        if (!best || scores[i] < low || (scores[i] == low && names[i] < *best)) {
            best = &names[i];
            low = scores[i];
        }
    return best && low < kReasonBelow ? *best : std::string();
}

[[noreturn]] void usage_error(const std::string& msg) {
    std::fprintf(stderr, "%squasar-score: error: %s\n", kUsage, msg.c_str());
    std::exit(2);
}

long long positive(const std::string& opt, const std::string& v) {
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || errno) usage_error("argument " + opt + ": invalid _positive value: '" + v + "'");
    if (n < 1) usage_error("argument " + opt + ": must be at least 1, got " + std::to_string(n));
    return n;
}

Args parse(int argc, char** argv) {
    Args a;
    bool only_paths = false;
    for (int i = 1; i < argc; ++i) {
        std::string s = argv[i];
        auto value = [&](const std::string& opt) -> std::string {
            size_t eq = s.find('=');
            if (s.rfind("--", 0) == 0 && eq != std::string::npos) return s.substr(eq + 1);
            if (i + 1 >= argc) usage_error("argument " + opt + ": expected one argument");
            return argv[++i];
        };
        auto is = [&](const char* name) { return s == name || s.rfind(std::string(name) + "=", 0) == 0; };
        if (only_paths || s.empty() || s[0] != '-' || s == "-") {
            a.paths.push_back(s);
        } else if (s == "--") {
            only_paths = true;
        } else if (s == "-h" || s == "--help") {
            std::printf("%s%s", kUsage, kHelp);
            std::exit(0);
        } else if (s == "--version") {
            std::printf("quasar-score %s (C API %u); backends: %s\n", quasar_version(), quasar_api_version(), quasar_backends());
            std::exit(0);
        } else if (s == "-r" || s == "--recursive") {
            a.recursive = true;
        } else if (s == "--follow-links") {
            a.follow_links = true;
        } else if (s == "--resume") {
            a.resume = true;
        } else if (s == "--margins") {
            a.margins = true;
        } else if (s == "--explain") {
            a.explain = true;
        } else if (s == "--no-reduced-decode") {
            a.no_reduced = true;
        } else if (s == "--strict") {
            a.strict = true;
        } else if (s == "-q" || s == "--quiet") {
            a.quiet = true;
        } else if (is("--model")) {
            a.model = value("--model");
        } else if (s == "-o" || is("--output")) {
            a.output = value("-o/--output");
        } else if (is("--format")) {
            a.format = value("--format");
            if (a.format != "csv" && a.format != "jsonl")
                usage_error("argument --format: invalid choice: '" + a.format + "' (choose from 'csv', 'jsonl')");
        } else if (is("--backend")) {
            a.backend = value("--backend");
        } else if (is("--batch-size")) {
            a.batch_size = int(std::min<long long>(positive("--batch-size", value("--batch-size")), 1 << 20));
        } else if (is("--workers")) {
            a.workers = int(std::min<long long>(positive("--workers", value("--workers")), 256));
        } else if (is("--threads")) {
            a.threads = int(std::min<long long>(positive("--threads", value("--threads")), 1024));
        } else if (is("--max-pixels")) {
            a.max_pixels = positive("--max-pixels", value("--max-pixels"));
        } else {
            usage_error("unrecognized arguments: " + s);
        }
    }
    if (a.paths.empty()) usage_error("the following arguments are required: PATH");
    return a;
}

// One prepared input or the reason it failed; filled by a worker.
struct Job {
    Item item;
    std::promise<void> done;
    std::shared_future<void> ready;
    quasar::Image image;
    std::string error;
};

class Pool {
public:
    explicit Pool(int n) {
        for (int i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> l(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
    }
    void submit(std::function<void()> f) {
        {
            std::lock_guard<std::mutex> l(mu_);
            q_.push_back(std::move(f));
        }
        cv_.notify_one();
    }

private:
    void loop() {
        while (true) {
            std::function<void()> f;
            {
                std::unique_lock<std::mutex> l(mu_);
                cv_.wait(l, [this] { return stop_ || !q_.empty(); });
                if (q_.empty()) return;
                f = std::move(q_.front());
                q_.pop_front();
            }
            f();
        }
    }
    std::vector<std::thread> threads_;
    std::deque<std::function<void()>> q_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
};

int exit_status(long n, long failed, long skipped, bool strict) {
    if (strict && failed) return 1;
    if (n - failed > 0) return 0;
    return n == 0 && skipped ? 0 : 1;
}

// validate: the model path, and the output checked against the inputs before anything loads (an output
// that is an input is never touched).
std::string validate(const Args& a) {
    std::string model = a.model;
    if (model.empty()) {
        const char* env = std::getenv("QUASAR_MODEL");
        if (!env || !*env) throw CliError("no model: pass --model FILE or set QUASAR_MODEL (the native CLI has no built-in model)");
        model = env;
    }
    if (a.resume && a.output == "-") throw CliError("--resume needs an output file (-o FILE), not stdout");
    check_output(a.output, a.paths);
    return model;
}

// What build() makes from valid arguments: the scorer, the columns written, the open output.
struct Plan {
    std::string model;
    std::unique_ptr<quasar::Scorer> scorer;
    std::vector<std::string> all_heads;
    std::vector<size_t> cols;      // the heads written (the summary heads, and with --explain the explanation heads)
    std::vector<size_t> families;  // --explain: the explanation heads (for `reason`)
    std::set<std::string> done;    // --resume: keys already in the output
    std::unique_ptr<RowWriter> writer;
    int batch_size = 1, workers = 1;
};

std::unique_ptr<quasar::Scorer> load_scorer(const Args& a, const std::string& model) {
    quasar::Options o;
    o.backend = a.backend;
    o.threads = a.threads;
    o.max_pixels = a.max_pixels;
    o.reduced_decode = !a.no_reduced;
    try {
        return std::unique_ptr<quasar::Scorer>(new quasar::Scorer(model, o));
    } catch (const quasar::Exception& e) {
        throw CliError(e.what());
    }
}

// build: load the model, choose the columns (--explain: `reason` names the weakest family head below
// kReasonBelow, quasar/runtime/explain.py REASON_BELOW), open the output.
Plan build(const Args& a, const std::string& model) {
    Plan p;
    p.model = model;
    p.scorer = load_scorer(a, model);
    p.all_heads = p.scorer->heads();
    const auto summary = p.scorer->summary_mask(), why = p.scorer->explain_mask();
    std::vector<std::string> heads;
    for (size_t i = 0; i < p.all_heads.size(); ++i) {
        if (summary[i] || (a.explain && why[i])) {
            p.cols.push_back(i);
            heads.push_back(p.all_heads[i]);
        }
        if (a.explain && why[i]) p.families.push_back(i);
    }
    p.writer.reset(open_writer(a.output, a.format, heads, a.margins, a.resume, p.done, !p.families.empty()));
    if (!a.quiet)
        for (const auto& note : p.writer->notes) std::fprintf(stderr, "quasar score: %s: %s\n", encode_text(a.output).c_str(), note.c_str());
    p.batch_size = std::max(1, a.batch_size ? std::min(a.batch_size, p.scorer->batch_size()) : p.scorer->batch_size());
    p.workers = a.workers ? a.workers : std::max(1, std::min(8, int(std::thread::hardware_concurrency())));
    return p;
}

// The reason a worker could not prepare a file.
std::string prepare_error(const quasar::Exception& e) {
    if (e.status() == QUASAR_ERR_OUT_OF_MEMORY) return "out of memory while decoding (use fewer --workers or a lower --max-pixels)";
    if (e.status() == QUASAR_ERR_IMAGE) return e.what();
    return std::string("unexpected error: ") + e.what();
}

// execute: walk the inputs, prepare them on the pool, score them in batches on this thread and write
// the rows in input order. The pool is a member, so it stops before the plan's scorer goes.
class Execution {
public:
    Execution(const Args& a, Plan& p) : a_(a), p_(p), pool_(p.workers) {}
    int run(std::chrono::steady_clock::time_point t0);

private:
    void write(const Row& r) {
        p_.writer->write(r);
        ++n_;
        if (!r.ok) failures_.emplace_back(r.path, r.error);
    }
    Row scored_row(const Job& job, const quasar::Scores& res, quasar_status st);
    void flush();
    void take();
    void submit(const Item& item);
    int interrupted();
    void summary(double seconds) const;

    const Args& a_;
    Plan& p_;
    Pool pool_;
    std::deque<std::shared_ptr<Job>> inflight_;
    std::vector<std::shared_ptr<Job>> batch_;  // prepared images waiting for inference, in input order
    long n_ = 0, skipped_ = 0, warned_ = 0;
    std::vector<std::pair<std::string, std::string>> failures_;
};

Row Execution::scored_row(const Job& job, const quasar::Scores& res, quasar_status st) {
    Row r;
    r.path = job.item.label;
    if (st != QUASAR_OK) {
        r.error = "the model gave a non-finite score (NaN or infinity); suspect the model file " + p_.model +
                  " (corrupted weights or logit scale), not the image";
        return r;
    }
    r.ok = true;
    for (size_t c : p_.cols) {
        r.scores.push_back(res.scores[c]);
        r.margins.push_back(res.margins[c]);
    }
    r.reason = weakest_family(res.scores, p_.families, p_.all_heads);
    std::string w = job.image.warning();
    if (!w.empty() && ++warned_ <= kMaxListed && !a_.quiet)
        std::fprintf(stderr, "quasar score: warning: %s: %s\n", encode_text(r.path).c_str(), w.c_str());
    return r;
}

void Execution::flush() {
    if (batch_.empty()) return;
    std::vector<const quasar::Image*> imgs;
    for (auto& j : batch_) imgs.push_back(&j->image);
    std::vector<quasar_status> st;
    std::vector<quasar::Scores> res;
    try {
        res = p_.scorer->score_images(imgs, &st);
    } catch (const quasar::Exception& e) {
        throw CliError(e.what());
    }
    for (size_t i = 0; i < batch_.size(); ++i) write(scored_row(*batch_[i], res[i], st[i]));
    batch_.clear();
}

void Execution::take() {
    std::shared_ptr<Job> j = inflight_.front();
    inflight_.pop_front();
    j->ready.wait();
    if (!j->error.empty()) {
        flush();  // rows stay in input order
        Row r;
        r.path = j->item.label;
        r.error = j->error;
        write(r);
        return;
    }
    batch_.push_back(j);
    if (int(batch_.size()) >= p_.batch_size) flush();
}

void Execution::submit(const Item& item) {
    auto job = std::make_shared<Job>();
    job->item = item;
    job->ready = job->done.get_future().share();
    if (!item.error.empty()) {
        job->error = item.error;
        job->done.set_value();
    } else {
        quasar::Scorer* s = p_.scorer.get();
        pool_.submit([job, s] {
            try {
                job->image = s->prepare_file(job->item.label);
            } catch (const quasar::Exception& e) {
                job->error = prepare_error(e);
            } catch (const std::exception& e) {
                job->error = std::string("unexpected error: ") + e.what();
            }
            job->done.set_value();
        });
    }
    inflight_.push_back(job);
}

int Execution::interrupted() {
    for (auto& j : inflight_) j->ready.wait();  // let the workers finish before the scorer goes
    p_.writer->close();
    std::string rows = std::to_string(n_) + (n_ != 1 ? " rows" : " row");
    if (a_.output == "-")
        std::fprintf(stderr, "quasar score: interrupted after %s\n", rows.c_str());
    else
        std::fprintf(stderr, "quasar score: interrupted; the %s written to %s are kept: run the same command with --resume to continue\n",
                     rows.c_str(), encode_text(a_.output).c_str());
    return 130;
}

void Execution::summary(double dt) const {
    long failed = long(failures_.size());
    char rate[64] = "";
    if (dt > 0 && n_) std::snprintf(rate, sizeof rate, ", %.1f img/s", double(n_) / dt);
    std::string extra = skipped_ ? ", " + std::to_string(skipped_) + " already in the output" : "";
    if (warned_) extra += ", " + std::to_string(warned_) + " with a warning";
    std::fprintf(stderr, "quasar score: %ld of %ld scored, %ld failed%s (%.1f s%s)\n", n_ - failed, n_, failed, extra.c_str(), dt, rate);
    if (n_ == 0 && !skipped_) std::fprintf(stderr, "quasar score: no images found (folders need -r to include sub-folders)\n");
    for (size_t i = 0; i < failures_.size() && i < size_t(kMaxListed); ++i)
        std::fprintf(stderr, "  %s: %s\n", encode_text(failures_[i].first).c_str(), encode_text(failures_[i].second).c_str());
    if (failures_.size() > size_t(kMaxListed))
        std::fprintf(stderr, "  ... and %zu more (see the error column)\n", failures_.size() - size_t(kMaxListed));
}

int Execution::run(std::chrono::steady_clock::time_point t0) {
    const size_t max_inflight = size_t(2 * p_.workers + 2);
    Walker walker(a_.paths, a_.recursive, a_.follow_links);
    Item item;
    while (!g_interrupted && walker.next(item)) {
        if (!p_.done.empty() && p_.done.count(resume_key(item.label))) {
            ++skipped_;
            continue;
        }
        submit(item);
        while (inflight_.size() >= max_inflight && !g_interrupted) take();
    }
    while (!inflight_.empty() && !g_interrupted) take();
    if (g_interrupted) return interrupted();
    flush();
    p_.writer->close();
    if (!a_.quiet) summary(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return exit_status(n_, long(failures_.size()), skipped_, a_.strict);
}

int run(const Args& a) {
    auto t0 = std::chrono::steady_clock::now();
    const std::string model = validate(a);
    Plan plan = build(a, model);
    return Execution(a, plan).run(t0);
}

}  // namespace

int main(int argc, char** argv) {
    Args a = parse(argc, argv);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    // OpenCV logs every undecodable file on stderr; the CLI reports them itself (as `quasar score` does).
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);  // a closed pipe is a write error, reported as exit 141 below
    try {
        return run(a);
    } catch (const BrokenPipe&) {
        return 141;
    } catch (const CliError& e) {
        std::fprintf(stderr, "quasar: error: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "quasar: error: %s\n", e.what());
        return 2;
    }
}
