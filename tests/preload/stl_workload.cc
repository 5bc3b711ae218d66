// stl_workload.cc -- a C++ program using the STL (containers, strings,
// shared_ptr, threads, aligned new), run under LD_PRELOAD by run-programs.sh.
// Prints a checksum that does not depend on the allocator, and for a few
// objects made by operator new, the VmFlags of the VMA holding them, so the
// script can see that new/delete reach lofalloc's lock-on-fault heap.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

static std::string vmflags_of(const void *p) {
  std::ifstream f("/proc/self/smaps");
  std::string line;
  bool in = false;
  auto a = reinterpret_cast<std::uintptr_t>(p);
  while (std::getline(f, line)) {
    unsigned long lo, hi;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > 20) {
      in = a >= lo && a < hi;
    } else if (in && line.rfind("VmFlags:", 0) == 0) {
      return line.substr(9);
    }
  }
  return "none";
}

struct alignas(64) Cell {
  long v[8];
};

int main() {
  std::uint64_t sum = 0;
  std::vector<std::thread> ts;
  std::vector<std::uint64_t> part(4);
  for (int t = 0; t < 4; t++)
    ts.emplace_back([t, &part] {
      std::map<int, std::string> m;
      std::unordered_map<std::string, std::vector<int>> u;
      for (int i = 0; i < 20000; i++) {
        m[i * 7 % 10007] = std::to_string(i * t);
        u[std::to_string(i % 997)].push_back(i);
      }
      std::uint64_t s = 0;
      for (auto &kv : m) s += kv.second.size() + static_cast<std::uint64_t>(kv.first);
      for (auto &kv : u) s += kv.second.size();
      part[t] = s;
    });
  for (auto &th : ts) th.join();
  sum = std::accumulate(part.begin(), part.end(), std::uint64_t{0});
  std::vector<std::shared_ptr<std::string>> v;
  for (int i = 0; i < 50000; i++) v.push_back(std::make_shared<std::string>(i % 50, 'x'));
  std::sort(v.begin(), v.end(), [](auto &a, auto &b) { return a->size() < b->size(); });
  for (auto &s : v) sum += s->size();
  std::ostringstream os;
  for (int i = 0; i < 1000; i++) os << i;
  sum += os.str().size();
  std::vector<Cell> cells(1000);
  sum += reinterpret_cast<std::uintptr_t>(cells.data()) % 64; // 0 when aligned
  std::printf("checksum %llu\n", static_cast<unsigned long long>(sum));
  int *small = new int(5);
  std::vector<char> big(1 << 20);
  auto *aligned = new Cell;
  std::printf("new-small %s\n", vmflags_of(small).c_str());
  std::printf("vector-data %s\n", vmflags_of(big.data()).c_str());
  std::printf("aligned-new %s %d\n", vmflags_of(aligned).c_str(),
              static_cast<int>(reinterpret_cast<std::uintptr_t>(aligned) % 64));
  delete small;
  delete aligned;
  return 0;
}
