/*
 * persist.h - HNSEMU_STATE_FILE: the store shared by every process that uses
 * the same file, the way real HNS outlives the agent.
 *
 * Each call runs between persist_begin (take the cross-process lock, reload
 * when the file changed since this process last saw it) and persist_end
 * (write it back atomically when the call changed something, release the
 * lock). The process-wide mutex must be held around the whole sequence.
 */
#ifndef HNSEMU_PERSIST_H
#define HNSEMU_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Use path as the state file (NULL or "" = memory only). */
void persist_configure(const char *path);
int persist_enabled(void);
/* Lock and refresh s. On failure the lock is released and an HRESULT returned. */
int32_t persist_begin(store *s, char *detail, size_t n);
/* When dirty, write s out; always release the lock. Returns a failure HRESULT if the write failed. */
int32_t persist_end(store *s, int dirty, char *detail, size_t n);

#endif
