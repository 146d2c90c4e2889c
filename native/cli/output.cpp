#include "output.hpp"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "json.hpp"
#include "pathtext.hpp"
#include "walk.hpp"

namespace quasar_cli {

namespace {

// os.path.realpath for a path that may not exist yet: its folder resolved, its name kept.
std::string real_path(const std::string& p) {
    char buf[PATH_MAX];
    if (::realpath(p.c_str(), buf)) return buf;
    size_t slash = p.rfind('/');
    std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
    std::string name = slash == std::string::npos ? p : p.substr(slash + 1);
    if (::realpath(dir.c_str(), buf)) return path_join(buf, name);
    return abspath(p);
}

std::pair<std::string, std::string> split_dir(const std::string& real) {
    size_t slash = real.rfind('/');
    return {slash == 0 ? "/" : real.substr(0, slash), real.substr(slash + 1)};
}

bool is_device(const std::string& out) {
    struct stat st;
    return ::stat(out.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
}

}  // namespace

void check_output(const std::string& out, const std::vector<std::string>& inputs) {
    if (out == "-") return;
    size_t slash = out.rfind('/');
    std::string name = slash == std::string::npos ? out : out.substr(slash + 1);
    if (has_image_extension(name)) {
        std::string ext = name.substr(name.rfind('.'));
        for (auto& c : ext) c = char(std::tolower(uint8_t(c)));
        throw CliError(encode_text(out) + ": the output has an image file extension (" + ext +
                       "); refusing to write over what may be a photo (name it .csv, .jsonl or .html)");
    }
    struct stat so, si;
    if (::stat(out.c_str(), &so) == 0 && S_ISDIR(so.st_mode))
        throw CliError(encode_text(out) + ": is a directory; give a file name for the output");
    bool exists = ::stat(out.c_str(), &so) == 0;
    for (const auto& in : inputs) {
        bool same = exists && ::stat(in.c_str(), &si) == 0 ? (so.st_dev == si.st_dev && so.st_ino == si.st_ino)
                                                           : real_path(out) == real_path(in);
        if (same)
            throw CliError(encode_text(out) + ": the output is also an input (" + encode_text(in) +
                           "); refusing to write over it");
    }
}

OutputLock::OutputLock(const std::string& out) {
    auto [dir, base] = split_dir(real_path(out));
    path_ = path_join(dir, "." + base + ".lock");
    while (true) {
        int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0)
            throw CliError(encode_text(out) + ": cannot lock the output (" + encode_text(path_) + "): " + std::strerror(errno));
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            char buf[32] = {0};
            ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
            std::string pid(buf, n > 0 ? size_t(n) : 0);
            while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
            if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) pid = "unknown";
            ::close(fd);
            throw CliError(encode_text(out) + ": in use by another quasar run (PID " + pid +
                           "); wait for it to end or write to another file");
        }
        struct stat a, b;
        if (::fstat(fd, &a) == 0 && ::stat(path_.c_str(), &b) == 0 && a.st_ino == b.st_ino) {
            fd_ = fd;
            break;
        }
        ::close(fd);  // the holder removed it between our open and flock: lock the new one
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) != 0 || ::write(fd_, pid.data(), pid.size()) < 0) {
        // the PID is only for the message of a second run
    }
}

void OutputLock::release() {
    if (fd_ < 0) return;
    ::unlink(path_.c_str());
    ::close(fd_);
    fd_ = -1;
}

namespace {

std::string fmt6(float v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", double(v));
    return buf;
}

// A CSV field as Python's csv module writes it (QUOTE_MINIMAL, excel dialect).
std::string csv_field(const std::string& s) {
    bool quote = s.find_first_of(",\"\r\n") != std::string::npos;
    if (!quote) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += "\"\"";
        else out += c;
    }
    return out + "\"";
}

std::string csv_row(const std::vector<std::string>& fields) {
    std::string line;
    if (fields.size() == 1 && fields[0].empty()) return "\"\"\n";
    for (size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + csv_field(fields[i]);
    return line + "\n";
}

// JSON string as json.dumps(ensure_ascii=False) writes it.
std::string json_str(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += char(c);
                }
        }
    }
    return out + "\"";
}

std::string json_num(float v) { return quasar::py_float_repr(double(v)); }

// Python's csv.reader (excel dialect) over the whole text; returns rows with their end line numbers.
struct CsvRow {
    std::vector<std::string> fields;
    size_t line;
};

std::vector<CsvRow> parse_csv(const std::string& text) {
    std::vector<CsvRow> rows;
    size_t i = 0, line = 0;
    const size_t n = text.size();
    while (i < n) {
        std::vector<std::string> fields;
        std::string field;
        bool quoted = false, in_quotes = false, any = false;
        while (i < n) {
            char c = text[i];
            if (in_quotes) {
                if (c == '"') {
                    if (i + 1 < n && text[i + 1] == '"') {
                        field += '"';
                        i += 2;
                        continue;
                    }
                    in_quotes = false;
                    ++i;
                    continue;
                }
                if (c == '\n') ++line;
                field += c;
                ++i;
                continue;
            }
            if (c == '"' && field.empty() && !quoted) {
                in_quotes = quoted = any = true;
                ++i;
                continue;
            }
            if (c == ',') {
                fields.push_back(field);
                field.clear();
                quoted = false;
                any = true;
                ++i;
                continue;
            }
            if (c == '\r' || c == '\n') {
                if (c == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
                ++i;
                ++line;
                break;
            }
            field += c;
            any = true;
            ++i;
        }
        if (i >= n && !(text.empty()) && text.back() != '\n' && text.back() != '\r') ++line;
        if (any || !field.empty()) fields.push_back(field);
        rows.push_back({fields, line});
    }
    return rows;
}

bool valid_utf8(const std::string& s, size_t& bad) {
    size_t i = 0;
    while (i < s.size()) {
        uint8_t c = uint8_t(s[i]);
        if (c < 0x80) { ++i; continue; }
        size_t len = (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        bool ok = len && i + len <= s.size();
        for (size_t k = 1; ok && k < len; ++k) {
            uint8_t d = uint8_t(s[i + k]), lo = 0x80, hi = 0xBF;
            if (k == 1) {
                if (c == 0xE0) lo = 0xA0;
                if (c == 0xED) hi = 0x9F;
                if (c == 0xF0) lo = 0x90;
                if (c == 0xF4) hi = 0x8F;
            }
            ok = d >= lo && d <= hi;
        }
        if (!ok) { bad = i; return false; }
        i += len;
    }
    return true;
}

std::string read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw CliError(path + ": cannot read results file (" + std::strerror(errno) + ")");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

std::string py_list_repr(const std::vector<std::string>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + quasar::py_repr(v[i]);
    return out + "]";
}

std::vector<std::string> columns(const std::vector<std::string>& heads, bool margins, bool reason_column) {
    std::vector<std::string> cols = {"path"};
    cols.insert(cols.end(), heads.begin(), heads.end());
    if (margins)
        for (const auto& h : heads) cols.push_back(h + "_margin");
    if (reason_column) cols.push_back("reason");
    cols.push_back("error");
    return cols;
}

std::string infer_format(const std::string& out, const std::string& fmt) {
    if (!fmt.empty()) return fmt;
    std::string lower = out;
    for (auto& c : lower) c = char(std::tolower(uint8_t(c)));
    for (const char* ext : {".jsonl", ".ndjson", ".json"}) {
        size_t n = std::strlen(ext);
        if (lower.size() >= n && lower.compare(lower.size() - n, n, ext) == 0) return "jsonl";
    }
    return "csv";
}

RowWriter::RowWriter(FILE* f, bool owns, std::string fmt, std::vector<std::string> heads, bool margins, bool header,
                     std::string name, bool reason_column)
    : f_(f), owns_(owns), fmt_(std::move(fmt)), name_(std::move(name)), heads_(std::move(heads)), margins_(margins),
      reason_column_(reason_column) {
    if (header && fmt_ == "csv") put(csv_row(columns(heads_, margins_, reason_column_)));
}

RowWriter::~RowWriter() {
    if (owns_ && f_) std::fclose(f_);
    if (!tmp.empty()) ::unlink(tmp.c_str());
}

void RowWriter::put(const std::string& text) {
    if (std::fwrite(text.data(), 1, text.size(), f_) != text.size() || std::fflush(f_) != 0) {
        failed_ = true;
        if (errno == EPIPE) throw BrokenPipe();
        throw CliError(encode_text(name_) + ": cannot write results: " + std::strerror(errno));
    }
}

void RowWriter::write(const Row& r) {
    std::string path = encode_text(r.path);
    if (fmt_ == "csv") {
        std::vector<std::string> fields = {csv_cell(path)};
        for (size_t i = 0; i < heads_.size(); ++i) fields.push_back(r.ok ? fmt6(r.scores[i]) : "");
        if (margins_)
            for (size_t i = 0; i < heads_.size(); ++i) fields.push_back(r.ok ? fmt6(r.margins[i]) : "");
        if (reason_column_) fields.push_back(r.ok ? csv_cell(r.reason) : "");
        fields.push_back(r.ok ? "" : csv_cell(encode_text(r.error)));
        put(csv_row(fields));
        return;
    }
    std::string line = "{\"path\": " + json_str(path);
    for (size_t i = 0; i < heads_.size(); ++i) line += ", " + json_str(heads_[i]) + ": " + (r.ok ? json_num(r.scores[i]) : "null");
    if (margins_)
        for (size_t i = 0; i < heads_.size(); ++i)
            line += ", " + json_str(heads_[i] + "_margin") + ": " + (r.ok ? json_num(r.margins[i]) : "null");
    if (reason_column_) line += ", \"reason\": " + (r.ok ? json_str(r.reason) : std::string("null"));
    line += ", \"error\": " + (r.ok ? std::string("null") : json_str(encode_text(r.error))) + "}\n";
    put(line);
}

void RowWriter::close() {
    if (!owns_ || !f_) return;
    int rc = std::fclose(f_);
    int err = errno;
    f_ = nullptr;
    if (!tmp.empty()) {
        std::string t = tmp;
        tmp.clear();
        if (rc != 0 || failed_) {
            ::unlink(t.c_str());  // the rows did not all reach the file: the output stays as it was
        } else {
            struct stat st;
            if (::stat(target.c_str(), &st) == 0) ::chmod(t.c_str(), st.st_mode & 07777);
            if (::rename(t.c_str(), target.c_str()) != 0) {
                rc = -1;
                err = errno;
                ::unlink(t.c_str());
            }
        }
    }
    if (lock) lock->release();
    if (rc != 0 && !failed_) throw CliError(encode_text(name_) + ": cannot write results: " + std::strerror(err));
}

std::vector<std::string> repair_tail(const std::string& path) {
    std::string data = read_all(path);
    size_t keep = data.size();
    std::vector<std::string> notes;
    size_t nul = data.find('\0');
    if (nul != std::string::npos) {
        bool tail_only = data.find_first_not_of(std::string("\0\r\n", 3), nul) == std::string::npos;
        if (!tail_only) {
            size_t line = size_t(std::count(data.begin(), data.begin() + long(nul), '\n')) + 1;
            throw CliError(path + ":" + std::to_string(line) + ": NUL bytes in the middle of the file (damaged); "
                                                               "cannot resume from it: use another output file or drop --resume");
        }
        size_t nl = nul ? data.rfind('\n', nul - 1) : std::string::npos;
        keep = nl == std::string::npos ? 0 : nl + 1;
        notes.push_back("cut a NUL-filled tail (" + std::to_string(data.size() - keep) + " bytes)");
    }
    if (keep && data[keep - 1] != '\n') {
        size_t nl = data.rfind('\n', keep - 1);
        size_t cut = nl == std::string::npos ? 0 : nl + 1;
        notes.push_back("cut a half-written last line (" + std::to_string(keep - cut) + " bytes)");
        keep = cut;
    }
    if (keep < data.size() && ::truncate(path.c_str(), off_t(keep)) != 0)
        throw CliError(path + ": cannot repair the results file (" + std::strerror(errno) + ")");
    if (keep == 0 && !data.empty()) notes.push_back("no complete header line was left; the header is written again");
    return notes;
}

std::set<std::string> read_done(const std::string& path, const std::string& fmt, const std::vector<std::string>& want) {
    std::string text = read_all(path);
    size_t bad;
    if (!valid_utf8(text, bad))
        throw CliError(path + ": not UTF-8 text at byte " + std::to_string(bad) + "; cannot resume from it");
    std::set<std::string> done;
    if (fmt == "csv") {
        auto rows = parse_csv(text);
        if (rows.empty()) return done;
        if (rows[0].fields != want)
            throw CliError(path + ": columns " + py_list_repr(rows[0].fields) + " differ from this run's " + py_list_repr(want) +
                           "; use another output file or drop --resume");
        for (size_t i = 1; i < rows.size(); ++i) {
            const auto& r = rows[i];
            if (r.fields.empty()) continue;
            if (r.fields.size() != want.size())
                throw CliError(path + ":" + std::to_string(r.line) + ": row has " + std::to_string(r.fields.size()) +
                               " fields, expected " + std::to_string(want.size()) +
                               " (damaged file); use another output file or drop --resume");
            done.insert(resume_key(decode_text(csv_uncell(r.fields[0]))));
        }
        return done;
    }
    std::vector<std::string> want_sorted = want;
    std::sort(want_sorted.begin(), want_sorted.end());
    size_t n = 0, start = 0;
    while (start < text.size()) {
        size_t end = text.find_first_of("\n\r", start);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(start, end - start);
        start = end + 1;
        if (end < text.size() && text[end] == '\r' && start < text.size() && text[start] == '\n') ++start;
        ++n;
        if (line.find_first_not_of(" \t\f\v") == std::string::npos) continue;
        quasar::Json d;
        std::string err;
        if (!quasar::parse_json(line, d, err))
            throw CliError(path + ":" + std::to_string(n) + ": not a JSON line; cannot resume from this file");
        const quasar::Json* p = d.kind == quasar::Json::Object ? d.find("path") : nullptr;
        if (!p || p->kind != quasar::Json::String)
            throw CliError(path + ":" + std::to_string(n) + ": not a result row (no \"path\"); cannot resume from this file");
        if (n == 1) {
            std::vector<std::string> keys;
            for (const auto& kv : d.obj)
                if (std::find(keys.begin(), keys.end(), kv.first) == keys.end()) keys.push_back(kv.first);
            std::sort(keys.begin(), keys.end());
            if (keys != want_sorted)
                throw CliError(path + ": keys " + py_list_repr(keys) + " differ from this run's " + py_list_repr(want_sorted) +
                               "; use another output file or drop --resume");
        }
        done.insert(resume_key(decode_text(p->str)));
    }
    return done;
}

RowWriter* open_writer(const std::string& out, const std::string& fmt_in, const std::vector<std::string>& heads,
                       bool margins, bool resume, std::set<std::string>& done, bool reason_column) {
    std::string fmt = infer_format(out, fmt_in);
    if (fmt != "csv" && fmt != "jsonl")
        throw CliError("unknown output format '" + fmt + "'; expected one of ('csv', 'jsonl')");
    if (out == "-") {
        if (resume) throw CliError("--resume needs an output file (-o FILE), not stdout");
        return new RowWriter(stdout, false, fmt, heads, margins, true, "<stdout>", reason_column);
    }
    struct stat st;
    if (::stat(out.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        throw CliError(encode_text(out) + ": is a directory; give a file name for the results");
    // locked before reading what is done; see quasar/runtime/outfile.py (a device is written as it is)
    std::unique_ptr<OutputLock> lock(is_device(out) ? nullptr : new OutputLock(out));
    bool existing = resume && ::stat(out.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    std::vector<std::string> notes;
    if (existing) {
        notes = repair_tail(out);
        done = read_done(out, fmt, columns(heads, margins, reason_column));
        existing = ::stat(out.c_str(), &st) == 0 && st.st_size > 0;
    }
    // --resume appends in place (each row durable at once); otherwise a temporary file renamed into place
    std::string tmp, target;
    FILE* f = nullptr;
    if (resume || !lock) {
        f = std::fopen(out.c_str(), resume ? "ab" : "wb");
    } else {
        target = real_path(out);
        auto [dir, base] = split_dir(target);
        std::random_device rd;
        for (int tries = 0; tries < 100 && !f; ++tries) {
            char suffix[32];
            std::snprintf(suffix, sizeof suffix, ".%d-%08x.tmp", int(::getpid()), unsigned(rd()));
            tmp = path_join(dir, "." + base + suffix);
            int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            if (fd >= 0) f = ::fdopen(fd, "wb");
            else if (errno != EEXIST) break;
        }
    }
    if (!f) throw CliError(encode_text(out) + ": cannot write results: " + std::strerror(errno));
    std::unique_ptr<RowWriter> w;
    try {
        w.reset(new RowWriter(f, true, fmt, heads, margins, !existing, out, reason_column));
    } catch (...) {
        std::fclose(f);
        if (!tmp.empty()) ::unlink(tmp.c_str());
        throw;
    }
    w->tmp = tmp;
    w->target = target;
    w->lock = std::move(lock);
    w->notes = notes;
    return w.release();
}

}  // namespace quasar_cli
