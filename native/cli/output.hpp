// Result files for quasar-score: CSV or JSON Lines, written row by row (each row flushed) and
// resumable; byte for byte the format of `quasar score` (quasar/runtime/output.py).
#pragma once
#include <cstdio>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace quasar_cli {

struct CliError : std::runtime_error {  // a fatal, one-line error (exit status 2)
    using std::runtime_error::runtime_error;
};

struct BrokenPipe : std::runtime_error {  // the reader of stdout went away: end quietly (exit 141)
    BrokenPipe() : std::runtime_error("broken pipe") {}
};

struct Row {
    std::string path;             // bytes as given
    std::vector<float> scores;    // per written head, empty on error
    std::vector<float> margins;
    bool ok = false;
    std::string error;
    std::string reason;           // --explain: the weakest family head (quasar/runtime/explain.py), or ""
};

// The columns of a results file; ``reason_column`` (--explain on a model with family heads) adds "reason".
std::vector<std::string> columns(const std::vector<std::string>& heads, bool margins, bool reason_column = false);
std::string infer_format(const std::string& out, const std::string& fmt);
std::string py_list_repr(const std::vector<std::string>& v);

// The output rules of quasar/runtime/outfile.py: refuse, before anything is written, an output that
// is one of the inputs (the same file), has an image extension or is a folder (CliError, one line).
void check_output(const std::string& out, const std::vector<std::string>& inputs);

// An exclusive flock on ".OUT.lock" beside OUT (the same file Python's OutputLock uses, so the two CLIs
// exclude each other); a second run gets a CliError naming the holder's PID. Released by release().
class OutputLock {
public:
    explicit OutputLock(const std::string& out);
    ~OutputLock() { release(); }
    void release();

private:
    std::string path_;
    int fd_ = -1;
};

class RowWriter {
public:
    RowWriter(FILE* f, bool owns, std::string fmt, std::vector<std::string> heads, bool margins, bool header, std::string name,
              bool reason_column = false);
    ~RowWriter();
    void write(const Row& row);
    void close();  // a temporary file is renamed over the output (removed instead after a failed write)
    std::vector<std::string> notes;  // what --resume repaired
    std::string tmp, target;         // written through a temporary file: its name and the file it replaces
    std::unique_ptr<OutputLock> lock;

private:
    void put(const std::string& text);
    FILE* f_;
    bool owns_;
    std::string fmt_, name_;
    std::vector<std::string> heads_;
    bool margins_;
    bool reason_column_;
    bool failed_ = false;
};

// Cuts damage at the end of a results file (a NUL-filled tail, a half-written last line).
std::vector<std::string> repair_tail(const std::string& path);
// Resume keys of the paths already in a results file; CliError on mismatched columns or damage.
std::set<std::string> read_done(const std::string& path, const std::string& fmt, const std::vector<std::string>& want);
// Opens ``out`` ("-": stdout) for writing; with ``resume`` also fills ``done``.
RowWriter* open_writer(const std::string& out, const std::string& fmt, const std::vector<std::string>& heads, bool margins,
                       bool resume, std::set<std::string>& done, bool reason_column = false);

}  // namespace quasar_cli
