// The inputs of a run as a lazy stream of items (mirrors quasar/runtime/sources.py): a file path
// is one item (even if missing: its error is reported per file); a folder yields its image files
// in sorted order (recursively with -r), one directory listing in memory at a time; symlinked folders
// are followed only into the scanned folder (all of them with follow_links), each real directory
// listed once, a symlink loop is an error item.
#pragma once
#include <sys/types.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace quasar_cli {

struct Item {
    std::string label;  // the path as given or joined
    std::string error;  // non-empty: this item failed while listing
};

bool has_image_extension(const std::string& name);

class Walker {
public:
    Walker(std::vector<std::string> paths, bool recursive, bool follow_links = false)
        : paths_(std::move(paths)), recursive_(recursive), follow_links_(follow_links) {}
    bool next(Item& out);  // false at the end

private:
    struct Dir {
        std::string path;
        std::vector<std::pair<dev_t, ino_t>> ancestors;
    };
    struct Frame {  // one listed directory: its files to yield, then its sub-folders
        std::vector<Item> files;
        size_t next_file = 0;
        std::vector<Dir> subdirs;
        size_t next_dir = 0;
    };
    void list(const Dir& d);
    std::vector<std::string> paths_;
    bool recursive_, follow_links_;
    std::string root_real_;  // the folder being scanned, resolved
    size_t next_path_ = 0;
    std::vector<Frame> stack_;
    std::set<std::pair<dev_t, ino_t>> seen_;
    bool in_folder_ = false, folder_empty_ = true;
    std::string folder_;
};

}  // namespace quasar_cli
