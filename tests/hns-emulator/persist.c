/* persist.c - see persist.h. */
#include "persist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"

static char *g_path;
static char *g_lock_path;
static file_ident g_seen; /* the file version the store currently mirrors */

void persist_configure(const char *path) {
  xfree(g_path);
  xfree(g_lock_path);
  g_path = g_lock_path = NULL;
  memset(&g_seen, 0, sizeof g_seen);
  if (!path || !*path) return;
  g_path = xstrdup(path);
  size_t n = strlen(path);
  g_lock_path = xmalloc(n + 6);
  memcpy(g_lock_path, path, n);
  memcpy(g_lock_path + n, ".lock", 6);
}

int persist_enabled(void) { return g_path != NULL; }

static int32_t write_out(store *s, char *detail, size_t n) {
  sbuf b;
  sb_init(&b);
  store_dump(s, &b);
  int rc = plat_write_atomic(g_path, b.p, b.n, detail, n);
  sb_free(&b);
  if (rc != 0) return HR_E_FAIL;
  plat_file_ident(g_path, &g_seen);
  return HR_OK;
}

static int32_t reload(store *s, char *detail, size_t n) {
  file_ident now;
  plat_file_ident(g_path, &now);
  if (plat_ident_equal(&now, &g_seen)) return HR_OK;
  if (!now.exists) {
    /* The file was removed: HNS was wiped (like a host reset). */
    store_clear(s);
    g_seen = now;
    return HR_OK;
  }
  char *data = NULL;
  size_t len = 0;
  char err[400];
  int rc = plat_read_file(g_path, &data, &len, err, sizeof err);
  if (rc == 1) {
    store_clear(s);
    memset(&g_seen, 0, sizeof g_seen);
    return HR_OK;
  }
  if (rc != 0) {
    snprintf(detail, n, "HNSEMU_STATE_FILE: %s", err);
    return HR_INVALID_DATA;
  }
  /* An empty file (just created by a test) is an empty HNS. */
  size_t i = 0;
  while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
  jval *doc = i == len ? json_new_obj() : json_parse(data, len, err, sizeof err);
  xfree(data);
  if (!doc) {
    snprintf(detail, n, "HNSEMU_STATE_FILE %s: invalid JSON: %s", g_path, err);
    return HR_INVALID_DATA;
  }
  int changed = 0;
  rc = store_load(s, doc, &changed, err, sizeof err);
  json_free(doc);
  if (rc != 0) {
    snprintf(detail, n, "HNSEMU_STATE_FILE %s: %s", g_path, err);
    memset(&g_seen, 0, sizeof g_seen);
    return HR_INVALID_DATA;
  }
  g_seen = now;
  /* IDs were assigned or normalized: publish them so every process sees the same ones. */
  if (changed) return write_out(s, detail, n);
  return HR_OK;
}

int32_t persist_begin(store *s, char *detail, size_t n) {
  char err[400];
  if (plat_lock_file(g_lock_path, err, sizeof err) != 0) {
    snprintf(detail, n, "HNSEMU_STATE_FILE: %s", err);
    return HR_E_FAIL;
  }
  int32_t hr = reload(s, detail, n);
  if (hr != HR_OK) plat_unlock_file();
  return hr;
}

int32_t persist_end(store *s, int dirty, char *detail, size_t n) {
  int32_t hr = dirty ? write_out(s, detail, n) : HR_OK;
  plat_unlock_file();
  return hr;
}
