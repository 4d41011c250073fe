#include "kvlab/io/probe_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "kvlab/core/error.hpp"

namespace kvlab::io {

namespace {

constexpr std::size_t kNoteSize = 256;

// What the child shares with the parent: the last note, and whether the
// probe function returned (or threw) at all.
struct Shared {
  char note[kNoteSize];
  volatile int finished;
};

char g_local_note[kNoteSize] = "the file";
char* g_note = g_local_note;  // the shared page while a probe runs in this (child) process
bool g_probing = true;
std::chrono::milliseconds g_timeout{60000};

// Closes both ends on scope exit.
struct Pipe {
  int fd[2] = {-1, -1};
  ~Pipe() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
};

[[noreturn]] void run_child(Shared* shared, int write_end, const std::function<void()>& probe) {
  g_note = shared->note;
  // No core file for every corrupt dump, no noise: the parent reports.
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (devnull >= 0) {
    ::dup2(devnull, STDOUT_FILENO);
    ::dup2(devnull, STDERR_FILENO);
  }
  try {
    probe();
  } catch (...) {  // a clean error: the parent repeats the work and reports it
  }
  shared->finished = 1;
  ::close(write_end);
  ::_exit(0);  // no atexit handlers: HDF5 must not flush the parent's open files
}

std::string describe_signal(int sig) {
  const char* name = ::strsignal(sig);
  return fmt::format("signal {}, {}", sig, name != nullptr ? name : "unknown");
}

// Waits for the child's end of the pipe to close (it exited) or the timeout.
bool wait_for_exit(int read_end) {
  const auto deadline = std::chrono::steady_clock::now() + g_timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{read_end, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (r < 0 && errno != EINTR) return true;  // cannot wait: fall through to waitpid
    if (r > 0) {
      char byte;
      const ssize_t got = ::read(read_end, &byte, 1);
      if (got <= 0) return true;  // EOF: the child closed its end (exited)
    }
  }
}

}  // namespace

void note_reading(const std::string& what) {
  const std::size_t n = std::min(what.size(), kNoteSize - 1);
  std::memcpy(g_note, what.data(), n);
  g_note[n] = '\0';
}

void set_probing(bool on) { g_probing = on; }
bool probing() { return g_probing; }
void set_probe_timeout(std::chrono::milliseconds timeout) { g_timeout = timeout; }

void probe_in_child(const std::string& file, const std::function<void()>& probe) {
  if (!g_probing) return;
  void* page = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return;
  auto* shared = static_cast<Shared*>(page);
  std::strcpy(shared->note, "the file");
  shared->finished = 0;
  struct Unmap {
    void* p;
    ~Unmap() { ::munmap(p, sizeof(Shared)); }
  } unmap{page};

  Pipe pipe;
  if (::pipe2(pipe.fd, O_CLOEXEC) != 0) return;
  std::fflush(nullptr);  // the child must not write the parent's buffered output again
  const pid_t pid = ::fork();
  if (pid < 0) return;  // cannot probe: read in-process
  if (pid == 0) run_child(shared, pipe.fd[1], probe);
  ::close(pipe.fd[1]);
  pipe.fd[1] = -1;

  const bool exited = wait_for_exit(pipe.fd[0]);
  if (!exited) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const std::string what(shared->note, strnlen(shared->note, kNoteSize));
  if (!exited)
    fail_file("{}: corrupt file: reading {} did not finish within {:g} s", file, what,
         static_cast<double>(g_timeout.count()) / 1000.0);
  if (WIFSIGNALED(status))
    fail_file("{}: corrupt file: reading {} crashed ({})", file, what, describe_signal(WTERMSIG(status)));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || shared->finished != 1)
    fail_file("{}: corrupt file: reading {} aborted (exit status {})", file, what,
         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

}  // namespace kvlab::io
