// corpus_main.h — main() for a fuzz target built without libFuzzer: runs
// LLVMFuzzerTestOneInput once over every file of a corpus directory, so CTest
// replays the corpus (under ASan/UBSan in CI). Include once, after the target.
#pragma once
#include <dirent.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

inline int corpusMain(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR* d = opendir(argv[1]);
    if (!d) {
        std::perror(argv[1]);
        return 2;
    }
    int n = 0;
    while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        std::ifstream f(std::string(argv[1]) + "/" + e->d_name, std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        std::string s = ss.str();
        LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
        ++n;
    }
    closedir(d);
    std::printf("%d inputs run\n", n);
    return n > 0 ? 0 : 1;
}
int main(int argc, char** argv) {
    return corpusMain(argc, argv);
}
