#include "walk.hpp"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "pathtext.hpp"

namespace quasar_cli {

namespace {

const char* const kExtensions[] = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif",
                                   ".tiff", ".gif", ".avif", ".heic", ".heif", ".hif", ".jp2", ".pbm", ".pgm", ".ppm", ".pnm"};

bool is_dir(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_link(const std::string& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

std::string real(const std::string& p) {
    char buf[PATH_MAX];
    return ::realpath(p.c_str(), buf) ? std::string(buf) : std::string();
}

bool inside(const std::string& target, const std::string& root) {
    if (target.empty() || root.empty()) return false;
    if (target == root) return true;
    std::string prefix = root == "/" ? root : root + "/";
    return target.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

bool has_image_extension(const std::string& name) {
    // pathlib's suffix: from the last dot, unless the name starts there or ends with it
    size_t i = name.rfind('.');
    if (i == std::string::npos || i == 0 || i == name.size() - 1) return false;
    std::string suffix = name.substr(i);
    for (auto& c : suffix) c = char(std::tolower(uint8_t(c)));
    for (const char* e : kExtensions)
        if (suffix == e) return true;
    return false;
}

void Walker::list(const Dir& d) {
    Frame f;
    struct stat st;
    if (::stat(d.path.c_str(), &st) != 0) {
        f.files.push_back({d.path, std::string("cannot open directory: ") + std::strerror(errno)});
        stack_.push_back(std::move(f));
        return;
    }
    std::pair<dev_t, ino_t> key(st.st_dev, st.st_ino);
    if (std::find(d.ancestors.begin(), d.ancestors.end(), key) != d.ancestors.end()) {
        char real[PATH_MAX];
        std::string where = ::realpath(d.path.c_str(), real) ? real : d.path;
        f.files.push_back({d.path, "directory symlink loop (points back to " + where + "); not followed"});
        stack_.push_back(std::move(f));
        return;
    }
    if (seen_.count(key)) return;
    seen_.insert(key);
    DIR* dir = ::opendir(d.path.c_str());
    if (!dir) {
        f.files.push_back({d.path, std::string("cannot list directory: ") + std::strerror(errno)});
        stack_.push_back(std::move(f));
        return;
    }
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(dir)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
    }
    int err = errno;
    ::closedir(dir);
    if (err) {
        f.files.push_back({d.path, std::string("cannot list directory: ") + std::strerror(err)});
        stack_.push_back(std::move(f));
        return;
    }
    std::sort(names.begin(), names.end());
    auto anc = d.ancestors;
    anc.push_back(key);
    for (const auto& n : names) {
        std::string p = path_join(d.path, n);
        if (is_dir(p)) {
            if (!follow_links_ && is_link(p) && !inside(real(p), root_real_)) continue;
            f.subdirs.push_back({p, anc});
        }
        else if (has_image_extension(n)) f.files.push_back({p, ""});
    }
    if (!recursive_) f.subdirs.clear();
    stack_.push_back(std::move(f));
}

bool Walker::next(Item& out) {
    while (true) {
        while (!stack_.empty()) {
            Frame& f = stack_.back();
            if (f.next_file < f.files.size()) {
                out = f.files[f.next_file++];
                folder_empty_ = false;
                return true;
            }
            if (f.next_dir < f.subdirs.size()) {
                Dir d = f.subdirs[f.next_dir++];
                list(d);
                continue;
            }
            stack_.pop_back();
        }
        if (in_folder_) {
            in_folder_ = false;
            if (folder_empty_) {
                out = {folder_, std::string("is a directory with no image files in it") +
                                    (recursive_ ? "" : "; use -r (recursive=True) to include sub-folders")};
                return true;
            }
        }
        if (next_path_ >= paths_.size()) return false;
        const std::string& p = paths_[next_path_++];
        if (!is_dir(p)) {
            out = {p, ""};
            return true;
        }
        in_folder_ = true;
        folder_empty_ = true;
        folder_ = p;
        seen_.clear();
        root_real_ = real(p);
        list({p, {}});
    }
}

}  // namespace quasar_cli
