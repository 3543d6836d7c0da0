/*
 * platform.h - the few OS services the emulator needs, for POSIX and Win32:
 * one process-wide mutex, one-time init, sleeping, entropy, the library's own
 * path, and the file operations behind HNSEMU_STATE_FILE (identity, read,
 * atomic replace, and a cross-process exclusive lock).
 */
#ifndef HNSEMU_PLATFORM_H
#define HNSEMU_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

void plat_mutex_lock(void);
void plat_mutex_unlock(void);
/* Run fn exactly once per process, whichever thread gets here first. */
void plat_once(void (*fn)(void));
void plat_sleep_us(uint32_t us);
/* Bits for seeding the GUID generator (differs across processes and calls). */
uint64_t plat_entropy(void);
int plat_pid(void);
/* Path of the library file this code was loaded from: 0 ok, -1 unknown or longer than n. */
int plat_module_path(char *buf, size_t n);

/* What identifies one version of a file: it changes when the file is replaced or rewritten. */
typedef struct file_ident {
  int exists;
  uint64_t v[5];
} file_ident;

void plat_file_ident(const char *path, file_ident *out);
int plat_ident_equal(const file_ident *a, const file_ident *b);
/* Read a whole file: 0 ok (*data malloc'd), 1 missing, -1 error (message in err). */
int plat_read_file(const char *path, char **data, size_t *len, char *err, size_t errlen);
/* Write to a temporary file beside path, then rename it over path. 0 ok, -1 error. */
int plat_write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen);
/* Take the exclusive cross-process lock held in lockpath (created if needed). 0 ok, -1 error. */
int plat_lock_file(const char *lockpath, char *err, size_t errlen);
void plat_unlock_file(void);

#endif
