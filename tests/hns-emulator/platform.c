/* platform.c - see platform.h. */
#define _GNU_SOURCE /* dladdr */
#include "platform.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#ifdef _WIN32

#define WIN32_LEAN_AND_MEAN
#include <windows.h>

static SRWLOCK g_lock = SRWLOCK_INIT;
static INIT_ONCE g_once = INIT_ONCE_STATIC_INIT;
static HANDLE g_lockfile = INVALID_HANDLE_VALUE;

void plat_mutex_lock(void) { AcquireSRWLockExclusive(&g_lock); }
void plat_mutex_unlock(void) { ReleaseSRWLockExclusive(&g_lock); }

static BOOL CALLBACK once_cb(PINIT_ONCE once, PVOID param, PVOID *ctx) {
  (void)once;
  (void)ctx;
  void (*fn)(void);
  memcpy(&fn, &param, sizeof fn);
  fn();
  return TRUE;
}

void plat_once(void (*fn)(void)) {
  PVOID param;
  memcpy(&param, &fn, sizeof param);
  InitOnceExecuteOnce(&g_once, once_cb, param, NULL);
}

void plat_sleep_us(uint32_t us) {
  if (us) Sleep((us + 999) / 1000);
}

uint64_t plat_entropy(void) {
  LARGE_INTEGER qpc;
  QueryPerformanceCounter(&qpc);
  FILETIME ft;
  GetSystemTimeAsFileTime(&ft);
  uint64_t t = ((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
  return (uint64_t)qpc.QuadPart ^ (t << 7) ^ ((uint64_t)GetCurrentProcessId() << 40) ^
         ((uint64_t)GetCurrentThreadId() << 20) ^ (uint64_t)(uintptr_t)&qpc;
}

int plat_pid(void) { return (int)GetCurrentProcessId(); }

/* Any object inside this library: its address names the module. */
static const char g_module_anchor = 0;

int plat_module_path(char *buf, size_t n) {
  HMODULE h = NULL;
  if (!GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                              GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                          &g_module_anchor, &h))
    return -1;
  DWORD len = GetModuleFileNameA(h, buf, (DWORD)n);
  return len == 0 || len >= n ? -1 : 0;
}

void plat_file_ident(const char *path, file_ident *out) {
  memset(out, 0, sizeof *out);
  HANDLE h = CreateFileA(path, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                         OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
  if (h == INVALID_HANDLE_VALUE) return;
  BY_HANDLE_FILE_INFORMATION info;
  if (GetFileInformationByHandle(h, &info)) {
    out->exists = 1;
    out->v[0] = info.dwVolumeSerialNumber;
    out->v[1] = ((uint64_t)info.nFileIndexHigh << 32) | info.nFileIndexLow;
    out->v[2] = ((uint64_t)info.nFileSizeHigh << 32) | info.nFileSizeLow;
    out->v[3] = ((uint64_t)info.ftLastWriteTime.dwHighDateTime << 32) |
                info.ftLastWriteTime.dwLowDateTime;
    out->v[4] = ((uint64_t)info.ftCreationTime.dwHighDateTime << 32) |
                info.ftCreationTime.dwLowDateTime;
  }
  CloseHandle(h);
}

static void win_error(char *err, size_t errlen, const char *what, const char *path) {
  snprintf(err, errlen, "%s %s: Win32 error %lu", what, path, (unsigned long)GetLastError());
}

int plat_write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, plat_pid());
  HANDLE h = CreateFileA(tmp, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    win_error(err, errlen, "create", tmp);
    return -1;
  }
  size_t off = 0;
  while (off < len) {
    DWORD chunk = (DWORD)((len - off) > 0x40000000 ? 0x40000000 : (len - off)), wrote = 0;
    if (!WriteFile(h, data + off, chunk, &wrote, NULL)) {
      win_error(err, errlen, "write", tmp);
      CloseHandle(h);
      DeleteFileA(tmp);
      return -1;
    }
    off += wrote;
  }
  CloseHandle(h);
  /* A reader outside the lock (a test peeking at the file) can hold it open briefly. */
  for (int attempt = 0; attempt < 100; attempt++) {
    if (MoveFileExA(tmp, path, MOVEFILE_REPLACE_EXISTING)) return 0;
    Sleep(5);
  }
  win_error(err, errlen, "replace", path);
  DeleteFileA(tmp);
  return -1;
}

int plat_lock_file(const char *lockpath, char *err, size_t errlen) {
  if (g_lockfile == INVALID_HANDLE_VALUE) {
    g_lockfile = CreateFileA(lockpath, GENERIC_READ | GENERIC_WRITE,
                             FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                             OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (g_lockfile == INVALID_HANDLE_VALUE) {
      win_error(err, errlen, "open", lockpath);
      return -1;
    }
  }
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  if (!LockFileEx(g_lockfile, LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, &ov)) {
    win_error(err, errlen, "lock", lockpath);
    return -1;
  }
  return 0;
}

void plat_unlock_file(void) {
  OVERLAPPED ov;
  memset(&ov, 0, sizeof ov);
  UnlockFileEx(g_lockfile, 0, 1, 0, &ov);
}

#else /* POSIX */

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void (*g_once_fn)(void);
static int g_lockfd = -1;

void plat_mutex_lock(void) { pthread_mutex_lock(&g_lock); }
void plat_mutex_unlock(void) { pthread_mutex_unlock(&g_lock); }

static void once_trampoline(void) { g_once_fn(); }

void plat_once(void (*fn)(void)) {
  /* The library has a single init function, so one static slot is enough. */
  g_once_fn = fn;
  pthread_once(&g_once, once_trampoline);
}

void plat_sleep_us(uint32_t us) {
  if (!us) return;
  struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

uint64_t plat_entropy(void) {
  uint64_t v = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0;
    close(fd);
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return v ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 48) ^
         (uint64_t)(uintptr_t)&ts;
}

int plat_pid(void) { return (int)getpid(); }

/* Any object inside this library: its address names the module. */
static const char g_module_anchor = 0;

int plat_module_path(char *buf, size_t n) {
  Dl_info info;
  if (!dladdr(&g_module_anchor, &info) || !info.dli_fname) return -1;
  size_t len = strlen(info.dli_fname);
  if (len >= n) return -1;
  memcpy(buf, info.dli_fname, len + 1);
  return 0;
}

void plat_file_ident(const char *path, file_ident *out) {
  memset(out, 0, sizeof *out);
  struct stat st;
  if (stat(path, &st) != 0) return;
  out->exists = 1;
  out->v[0] = (uint64_t)st.st_dev;
  out->v[1] = (uint64_t)st.st_ino;
  out->v[2] = (uint64_t)st.st_size;
  out->v[3] = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
  out->v[4] = (uint64_t)st.st_ctim.tv_sec * 1000000000ULL + (uint64_t)st.st_ctim.tv_nsec;
}

int plat_write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, plat_pid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    snprintf(err, errlen, "create %s: %s", tmp, strerror(errno));
    return -1;
  }
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
      close(fd);
      unlink(tmp);
      return -1;
    }
    off += (size_t)w;
  }
  close(fd);
  if (rename(tmp, path) != 0) {
    snprintf(err, errlen, "rename %s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

int plat_lock_file(const char *lockpath, char *err, size_t errlen) {
  if (g_lockfd < 0) {
    g_lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (g_lockfd < 0) {
      snprintf(err, errlen, "open %s: %s", lockpath, strerror(errno));
      return -1;
    }
  }
  while (flock(g_lockfd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    snprintf(err, errlen, "lock %s: %s", lockpath, strerror(errno));
    return -1;
  }
  return 0;
}

void plat_unlock_file(void) { flock(g_lockfd, LOCK_UN); }

#endif

int plat_ident_equal(const file_ident *a, const file_ident *b) {
  return a->exists == b->exists && memcmp(a->v, b->v, sizeof a->v) == 0;
}

int plat_read_file(const char *path, char **data, size_t *len, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT) return 1;
    snprintf(err, errlen, "open %s: %s", path, strerror(errno));
    return -1;
  }
  sbuf b;
  sb_init(&b);
  sb_putn(&b, "", 0);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sb_putn(&b, chunk, n);
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    snprintf(err, errlen, "read %s: I/O error", path);
    sb_free(&b);
    return -1;
  }
  *len = b.n;
  *data = sb_take(&b);
  return 0;
}
