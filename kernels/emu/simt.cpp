// Scheduler, barriers, shadow memory and launcher of the SIMT emulation.
// See simt.h for the model.
#include "simt.h"

#include <ucontext.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

namespace simt {
namespace {

constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kExchangeSlot = 128;
constexpr int kManyReaders = -2;
constexpr int kNobody = -1;

// Who last touched one byte of shared memory, and when (block barrier epoch,
// warp epoch of that thread's warp).
}  // namespace

struct ShadowEntry {
    uint64_t serial;
    uint32_t w_block, w_warp_epoch, r_block, r_warp_epoch;
    int32_t w_tid, r_tid;
    int16_t w_warp, r_warp;
};

namespace {

enum class State : uint8_t { Ready, AtBlockBarrier, AtWarpBarrier, Done };

struct PendingCopy {
    const Alloc* alloc;
    char* dst;
    unsigned char data[16];
    size_t n;
};

struct Fiber {
    ucontext_t ctx;
    std::unique_ptr<char[]> stack;
    State state = State::Ready;
    uint3 tid{0, 0, 0};
    unsigned linear = 0, warp = 0, lane = 0;
    std::vector<PendingCopy> pending;
    std::vector<size_t> group_ends;  // indices into pending where groups end
};

struct SharedBuffer {
    Alloc alloc;
    std::vector<ShadowEntry> shadow;
};

struct Worker {
    ucontext_t scheduler;
    std::vector<Fiber> fibers;
    Fiber* current = nullptr;
    const std::function<void()>* body = nullptr;
    const char* kernel = "?";
    uint3 block{0, 0, 0};
    dim3 bdim, gdim;
    unsigned nthreads = 0, nwarps = 0;
    uint32_t block_epoch = 0;
    uint64_t serial = 0;
    std::vector<uint32_t> warp_epoch;
    std::vector<unsigned> warp_arrived, warp_lanes;
    unsigned block_arrived = 0;
    std::vector<char> exchange;
    std::unordered_map<void*, std::unique_ptr<SharedBuffer>> statics;
    std::unique_ptr<char[]> dyn_storage;
    size_t dyn_bytes = 0;
    SharedBuffer dyn;
    bool failed = false;
    std::string error;
};

thread_local Worker* t_worker = nullptr;

std::atomic<uint64_t> g_serial{1};

Worker& worker() {
    if (!t_worker) {
        std::fprintf(stderr, "simt: device function called outside a kernel launch\n");
        std::abort();
    }
    return *t_worker;
}
Fiber& fiber() { return *worker().current; }

std::string where(const Worker& w, const Fiber* f) {
    std::ostringstream s;
    s << "kernel '" << w.kernel << "' block (" << w.block.x << "," << w.block.y << "," << w.block.z << ")";
    if (f) s << " thread (" << f->tid.x << "," << f->tid.y << "," << f->tid.z << ")";
    return s.str();
}

void yield_to_scheduler() {
    Worker& w = worker();
    Fiber* f = w.current;
    swapcontext(&f->ctx, &w.scheduler);
}

void fiber_entry() {
    Worker& w = worker();
    Fiber* f = w.current;
    try {
        (*w.body)();
    } catch (const Fault& e) {
        if (!w.failed) {
            w.failed = true;
            w.error = e.message;
        }
    } catch (const std::exception& e) {
        if (!w.failed) {
            w.failed = true;
            w.error = where(w, f) + ": exception: " + e.what();
        }
    }
    f->state = State::Done;
    // uc_link returns to the scheduler.
}

void reset_shadow(SharedBuffer& b) {
    // Entries carry the block serial, so a new block sees fresh entries
    // without clearing; nothing to do here.
    (void)b;
}

std::string describe_deadlock(const Worker& w) {
    unsigned at_block = 0, done = 0;
    std::vector<unsigned> warp_waiting(w.nwarps, 0);
    for (const Fiber& f : w.fibers) {
        if (f.state == State::AtBlockBarrier) at_block++;
        if (f.state == State::Done) done++;
        if (f.state == State::AtWarpBarrier) warp_waiting[f.warp]++;
    }
    std::ostringstream s;
    s << where(w, nullptr) << ": barrier can never complete (divergent barrier): " << at_block << " of "
      << w.nthreads << " threads wait at __syncthreads, " << done << " have exited";
    for (unsigned i = 0; i < w.nwarps; i++) {
        if (warp_waiting[i]) s << "; warp " << i << ": " << warp_waiting[i] << " of " << w.warp_lanes[i] << " lanes wait at a warp collective";
    }
    // Name the first exited and the first waiting thread to point at the branch.
    for (const Fiber& f : w.fibers) {
        if (f.state == State::Done) {
            s << "; e.g. thread (" << f.tid.x << "," << f.tid.y << "," << f.tid.z << ") exited";
            break;
        }
    }
    for (const Fiber& f : w.fibers) {
        if (f.state == State::AtBlockBarrier || f.state == State::AtWarpBarrier) {
            s << ", thread (" << f.tid.x << "," << f.tid.y << "," << f.tid.z << ") waits";
            break;
        }
    }
    return s.str();
}

// Runs one block to completion; false with w.error set on a fault.
bool run_block(Worker& w, uint3 block) {
    w.block = block;
    w.block_epoch = 0;
    w.serial = g_serial.fetch_add(1);
    std::fill(w.warp_epoch.begin(), w.warp_epoch.end(), 0);
    std::fill(w.warp_arrived.begin(), w.warp_arrived.end(), 0);
    w.block_arrived = 0;
    for (auto& kv : w.statics) reset_shadow(*kv.second);
    reset_shadow(w.dyn);
    for (Fiber& f : w.fibers) {
        f.state = State::Ready;
        f.pending.clear();
        f.group_ends.clear();
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.get();
        f.ctx.uc_stack.ss_size = kStackBytes;
        f.ctx.uc_link = &w.scheduler;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    for (;;) {
        bool progressed = false;
        bool all_done = true;
        for (Fiber& f : w.fibers) {
            if (f.state == State::Ready) {
                w.current = &f;
                swapcontext(&w.scheduler, &f.ctx);
                w.current = nullptr;
                progressed = true;
                if (w.failed) return false;
            }
            if (f.state != State::Done) all_done = false;
        }
        if (all_done) return true;
        if (!progressed) {
            w.failed = true;
            w.error = describe_deadlock(w);
            return false;
        }
    }
}

}  // namespace

// --- thread identity ---------------------------------------------------------------
const uint3& thread_idx() { return fiber().tid; }
const uint3& block_idx() { return worker().block; }
const dim3& block_dim() { return worker().bdim; }
const dim3& grid_dim() { return worker().gdim; }
unsigned lane_id() { return fiber().lane; }
unsigned warp_id() { return fiber().warp; }
unsigned warp_size_of_this_warp() { return worker().warp_lanes[fiber().warp]; }

void fault(const std::string& what) {
    Worker& w = worker();
    throw Fault{where(w, w.current) + ": " + what};
}

void check_full_mask(unsigned mask, const char* op) {
    unsigned n = warp_size_of_this_warp();
    unsigned full = n == 32 ? 0xffffffffu : ((1u << n) - 1u);
    if ((mask & full) != full) {
        std::ostringstream s;
        s << op << " with mask 0x" << std::hex << mask << ": partial-warp masks are not emulated";
        fault(s.str());
    }
}

// --- memory checks ------------------------------------------------------------------
namespace {
void check_shadow(const Alloc* a, size_t offset, size_t n, bool write) {
    Worker& w = worker();
    Fiber& f = *w.current;
    const int me = int(f.linear);
    const uint32_t B = w.block_epoch;
    const uint32_t W = w.warp_epoch[f.warp];
    auto unordered = [&](int tid, int warp, uint32_t eb, uint32_t ew) {
        if (tid == kNobody || tid == me) return false;
        if (eb != B) return false;                            // a __syncthreads since
        if (warp == int(f.warp) && ew != W) return false;     // a __syncwarp since, same warp
        return true;
    };
    for (size_t i = 0; i < n; i++) {
        ShadowEntry& e = a->shadow[offset + i];
        if (e.serial != w.serial) {
            e = ShadowEntry{w.serial, 0, 0, 0, 0, kNobody, kNobody, -1, -1};
        }
        const char* race = nullptr;
        int other = kNobody;
        if (unordered(e.w_tid, e.w_warp, e.w_block, e.w_warp_epoch)) {
            race = write ? "write after write" : "read after write";
            other = e.w_tid;
        } else if (write && e.r_tid != kNobody) {
            if (e.r_tid == kManyReaders) {
                if (e.r_block == B && !(e.r_warp == int(f.warp) && e.r_warp_epoch != W)) {
                    race = "write after read";
                    other = kManyReaders;
                }
            } else if (unordered(e.r_tid, e.r_warp, e.r_block, e.r_warp_epoch)) {
                race = "write after read";
                other = e.r_tid;
            }
        }
        if (race) {
            std::ostringstream s;
            s << "shared-memory race (" << race << ", no barrier between) on '" << a->name << "' byte "
              << (offset + i) << " of " << a->bytes << ": other thread ";
            if (other == kManyReaders) {
                s << "(several readers)";
            } else {
                const Fiber& o = w.fibers[size_t(other)];
                s << "(" << o.tid.x << "," << o.tid.y << "," << o.tid.z << ")";
            }
            fault(s.str());
        }
        if (write) {
            e.w_tid = me;
            e.w_warp = int16_t(f.warp);
            e.w_block = B;
            e.w_warp_epoch = W;
            e.r_tid = kNobody;
        } else {
            if (e.r_tid == kNobody || e.r_block != B) {
                e.r_tid = me;
                e.r_warp = int16_t(f.warp);
            } else if (e.r_tid != me) {
                e.r_tid = kManyReaders;
                if (e.r_warp != int(f.warp)) e.r_warp = -1;
            }
            e.r_block = B;
            e.r_warp_epoch = W;
        }
    }
}
}  // namespace

void check_access(const Alloc* a, const char* p, size_t n, size_t align, bool write) {
    const char* kind = write ? "write" : "read";
    if (!a || !a->base) {
        std::ostringstream s;
        s << kind << " of " << n << " bytes through a null pointer";
        fault(s.str());
    }
    const char* space = a->space == Space::Shared ? "shared" : "global";
    long long offset = p - a->base;
    if (offset < 0 || size_t(offset) + n > a->bytes) {
        std::ostringstream s;
        s << "out-of-bounds " << kind << " of " << n << " bytes at byte offset " << offset << " (address "
          << static_cast<const void*>(p) << ") of " << space << " buffer '" << a->name << "' (" << a->bytes
          << " bytes)";
        fault(s.str());
    }
    if (reinterpret_cast<uintptr_t>(p) % align != 0) {
        std::ostringstream s;
        s << "misaligned " << kind << " of " << n << " bytes at byte offset " << offset << " of " << space
          << " buffer '" << a->name << "' (needs " << align << "-byte alignment)";
        fault(s.str());
    }
    if (write && !a->writable) {
        fault(std::string("write to read-only buffer '") + a->name + "'");
    }
    if (a->shadow) check_shadow(a, size_t(offset), n, write);
}

// --- shared memory ------------------------------------------------------------------
const Alloc* shared_alloc(void* base, size_t bytes, const char* name) {
    Worker& w = worker();
    auto it = w.statics.find(base);
    if (it == w.statics.end()) {
        auto b = std::make_unique<SharedBuffer>();
        b->alloc.name = name;
        b->alloc.space = Space::Shared;
        b->alloc.base = static_cast<char*>(base);
        b->alloc.bytes = bytes;
        b->shadow.assign(bytes, ShadowEntry{0, 0, 0, 0, 0, kNobody, kNobody, -1, -1});
        b->alloc.shadow = b->shadow.data();
        it = w.statics.emplace(base, std::move(b)).first;
    }
    return &it->second->alloc;
}

const Alloc* dynamic_shared_alloc(const char* name) {
    Worker& w = worker();
    w.dyn.alloc.name = name;
    return &w.dyn.alloc;
}

// --- barriers -------------------------------------------------------------------------
void syncthreads() {
    Worker& w = worker();
    Fiber& f = *w.current;
    if (++w.block_arrived == w.nthreads) {
        w.block_arrived = 0;
        w.block_epoch++;
        for (Fiber& o : w.fibers) {
            if (o.state == State::AtBlockBarrier) o.state = State::Ready;
        }
        return;
    }
    f.state = State::AtBlockBarrier;
    yield_to_scheduler();
}

namespace {
// All lanes of the calling warp meet here; `bump` advances the warp's memory
// epoch (only __syncwarp orders memory; shuffles do not).
void warp_barrier(bool bump) {
    Worker& w = worker();
    Fiber& f = *w.current;
    if (++w.warp_arrived[f.warp] == w.warp_lanes[f.warp]) {
        w.warp_arrived[f.warp] = 0;
        if (bump) w.warp_epoch[f.warp]++;
        unsigned first = f.warp * 32;
        for (unsigned i = first; i < first + w.warp_lanes[f.warp]; i++) {
            if (w.fibers[i].state == State::AtWarpBarrier) w.fibers[i].state = State::Ready;
        }
        return;
    }
    f.state = State::AtWarpBarrier;
    yield_to_scheduler();
}
}  // namespace

void syncwarp() { warp_barrier(true); }

void warp_exchange(const void* mine, size_t size, const std::function<void(const char*, size_t)>& read) {
    if (size > kExchangeSlot) fault("warp exchange larger than its slot");
    Worker& w = worker();
    Fiber& f = *w.current;
    char* slots = w.exchange.data() + size_t(f.warp) * 32 * kExchangeSlot;
    std::memcpy(slots + size_t(f.lane) * kExchangeSlot, mine, size);
    warp_barrier(false);
    read(slots, kExchangeSlot);
    warp_barrier(false);
}

}  // namespace simt

unsigned __ballot_sync(unsigned mask, int predicate) {
    simt::check_full_mask(mask, "__ballot_sync");
    int mine = predicate != 0;
    unsigned out = 0;
    unsigned n = simt::warp_size_of_this_warp();
    simt::warp_exchange(&mine, sizeof mine, [&](const char* all, size_t stride) {
        for (unsigned i = 0; i < n; i++) {
            int v;
            std::memcpy(&v, all + i * stride, sizeof v);
            if (v) out |= 1u << i;
        }
    });
    return out;
}

namespace simt {

// --- cp.async ---------------------------------------------------------------------------
void async_copy_push(const Alloc* dst_alloc, char* dst, const void* data, size_t n) {
    Fiber& f = fiber();
    PendingCopy c;
    c.alloc = dst_alloc;
    c.dst = dst;
    c.n = n;
    std::memcpy(c.data, data, n);
    f.pending.push_back(c);
}

void async_copy_commit() {
    Fiber& f = fiber();
    f.group_ends.push_back(f.pending.size());
}

// Completes the oldest committed groups until at most `keep_pending` remain;
// the copies land in shared memory only now, so reading a tile before its
// wait sees stale data, as on the GPU.
void async_copy_wait(int keep_pending) {
    Fiber& f = fiber();
    size_t groups = f.group_ends.size();
    size_t keep = keep_pending < 0 ? 0 : size_t(keep_pending);
    if (groups <= keep) return;
    size_t finish = groups - keep;
    size_t upto = f.group_ends[finish - 1];
    for (size_t i = 0; i < upto; i++) {
        PendingCopy& c = f.pending[i];
        check_access(c.alloc, c.dst, c.n, c.n, true);
        std::memcpy(c.dst, c.data, c.n);
    }
    f.pending.erase(f.pending.begin(), f.pending.begin() + long(upto));
    f.group_ends.erase(f.group_ends.begin(), f.group_ends.begin() + long(finish));
    for (size_t& g : f.group_ends) g -= upto;
}

// --- launch -------------------------------------------------------------------------------
namespace {
unsigned env_unsigned(const char* name, unsigned fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    unsigned long x = std::strtoul(v, &end, 10);
    return (end && *end == 0 && x > 0) ? unsigned(x) : fallback;
}
}  // namespace

LaunchResult check_launch_shape(const char* kernel, dim3 grid, dim3 block, size_t dynamic_smem_bytes) {
    LaunchResult result;
    const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
    const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
    if (nthreads == 0 || nthreads > 1024 || block.z > 64) {
        result.ok = false;
        result.bad_arguments = true;
        result.error = std::string("kernel '") + kernel + "': invalid block size (CUDA allows 1..1024 threads, z <= 64)";
        return result;
    }
    if (nblocks == 0 || grid.y > 65535 || grid.z > 65535) {
        result.ok = false;
        result.bad_arguments = true;
        result.error = std::string("kernel '") + kernel + "': invalid grid size";
        return result;
    }
    if (dynamic_smem_bytes > 227 * 1024) {
        result.ok = false;
        result.bad_arguments = true;
        result.error = std::string("kernel '") + kernel + "': dynamic shared memory above the 227 KiB any GPU offers";
        return result;
    }
    return result;
}

LaunchResult launch(const char* kernel, dim3 grid, dim3 block, size_t dynamic_smem_bytes,
                    const std::function<void()>& body) {
    LaunchResult result = check_launch_shape(kernel, grid, block, dynamic_smem_bytes);
    if (!result.ok) return result;
    const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
    const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
    unsigned hw = std::thread::hardware_concurrency();
    unsigned nworkers = env_unsigned("GENFX_SIMT_WORKERS", hw ? hw : 2);
    if (uint64_t(nworkers) > nblocks) nworkers = unsigned(nblocks);
    const unsigned timeout_s = env_unsigned("GENFX_SIMT_TIMEOUT_S", 120);

    std::atomic<uint64_t> next{0};
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::condition_variable cv;
    unsigned finished = 0;
    std::string first_error;
    std::vector<std::string> running(nworkers);

    auto work = [&](unsigned index) {
        Worker w;
        t_worker = &w;
        w.body = &body;
        w.kernel = kernel;
        w.bdim = block;
        w.gdim = grid;
        w.nthreads = unsigned(nthreads);
        w.nwarps = (w.nthreads + 31) / 32;
        w.warp_epoch.assign(w.nwarps, 0);
        w.warp_arrived.assign(w.nwarps, 0);
        w.warp_lanes.assign(w.nwarps, 32);
        if (w.nthreads % 32) w.warp_lanes.back() = w.nthreads % 32;
        w.exchange.assign(size_t(w.nwarps) * 32 * kExchangeSlot, 0);
        w.fibers.resize(w.nthreads);
        for (unsigned i = 0; i < w.nthreads; i++) {
            Fiber& f = w.fibers[i];
            f.stack.reset(new char[kStackBytes]);
            f.linear = i;
            f.warp = i / 32;
            f.lane = i % 32;
            f.tid = uint3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
        }
        w.dyn_bytes = dynamic_smem_bytes;
        w.dyn_storage.reset(new char[dynamic_smem_bytes + 16]);
        char* dyn_base = w.dyn_storage.get();
        dyn_base += (16 - reinterpret_cast<uintptr_t>(dyn_base) % 16) % 16;
        w.dyn.alloc.space = Space::Shared;
        w.dyn.alloc.base = dynamic_smem_bytes ? dyn_base : nullptr;
        w.dyn.alloc.bytes = dynamic_smem_bytes;
        w.dyn.shadow.assign(dynamic_smem_bytes, ShadowEntry{0, 0, 0, 0, 0, kNobody, kNobody, -1, -1});
        w.dyn.alloc.shadow = w.dyn.shadow.data();
        w.dyn.alloc.name = "dynamic shared memory";
        // Fill dynamic shared memory with a pattern, as a GPU leaves it
        // undefined: kernels must not rely on zeros.
        if (dynamic_smem_bytes) std::memset(dyn_base, 0x7f, dynamic_smem_bytes);
        for (;;) {
            if (stop.load()) break;
            uint64_t b = next.fetch_add(1);
            if (b >= nblocks) break;
            uint3 bi{unsigned(b % grid.x), unsigned((b / grid.x) % grid.y), unsigned(b / (uint64_t(grid.x) * grid.y))};
            {
                std::lock_guard<std::mutex> lock(mu);
                std::ostringstream s;
                s << "(" << bi.x << "," << bi.y << "," << bi.z << ")";
                running[index] = s.str();
            }
            if (!run_block(w, bi)) {
                std::lock_guard<std::mutex> lock(mu);
                if (first_error.empty()) first_error = w.error;
                stop.store(true);
                break;
            }
        }
        t_worker = nullptr;
        std::lock_guard<std::mutex> lock(mu);
        finished++;
        cv.notify_all();
    };

    std::vector<std::thread> threads;
    for (unsigned i = 0; i < nworkers; i++) threads.emplace_back(work, i);
    {
        std::unique_lock<std::mutex> lock(mu);
        bool done = cv.wait_for(lock, std::chrono::seconds(timeout_s), [&] { return finished == nworkers; });
        if (!done) {
            std::fprintf(stderr,
                         "simt: kernel '%s' did not finish within %u s (GENFX_SIMT_TIMEOUT_S); blocks running:",
                         kernel, timeout_s);
            for (auto& r : running) std::fprintf(stderr, " %s", r.c_str());
            std::fprintf(stderr, "; a thread spins without reaching a barrier. Ending the process.\n");
            std::fflush(stderr);
            std::_Exit(97);
        }
    }
    for (auto& t : threads) t.join();
    if (!first_error.empty()) {
        result.ok = false;
        result.error = first_error;
    }
    return result;
}

}  // namespace simt
