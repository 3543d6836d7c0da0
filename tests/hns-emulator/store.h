/*
 * store.h - the in-memory HNS: networks, endpoints and load balancers with
 * the rules real HNS enforces (ID assignment, duplicate endpoint IPs, LB port
 * conflicts, references that block deletes, not-found codes).
 *
 * Every object is kept as the JSON text HNS would return (the compact
 * serialization of its document, made once when it is written): a Query copies
 * it, and the rules parse it only to change it. Lookups go
 * through hash maps (ID, endpoint IP per network, LB frontend key), so a
 * call costs the same with 60,000 objects as with ten; only enumerate scans.
 * The store is not thread-safe; the caller holds the global lock.
 */
#ifndef HNSEMU_STORE_H
#define HNSEMU_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "hashmap.h"
#include "json.h"

/* HRESULTs the rules produce (as int32). */
#define HR_OK 0
#define HR_E_NOTIMPL ((int32_t)0x80004001u)
#define HR_E_POINTER ((int32_t)0x80004003u)
#define HR_E_FAIL ((int32_t)0x80004005u)
#define HR_E_ACCESSDENIED ((int32_t)0x80070005u)
#define HR_E_HANDLE ((int32_t)0x80070006u)
#define HR_INVALID_DATA ((int32_t)0x8007000Du)
#define HR_E_INVALIDARG ((int32_t)0x80070057u)
#define HR_ALREADY_EXISTS ((int32_t)0x800700B7u)
#define HR_NOT_FOUND ((int32_t)0x80070490u)
#define HR_NETWORK_NOT_FOUND ((int32_t)0x803B0001u)
#define HR_ENDPOINT_NOT_FOUND ((int32_t)0x803B0002u)
#define HR_PORT_EXISTS ((int32_t)0x803B0013u)
#define HR_INVALID_JSON ((int32_t)0x803B001Bu)
#define HR_INVALID_IP ((int32_t)0x803B001Eu)
#define HR_MANAGER_STOPPED ((int32_t)0x803B0020u)
#define HR_HAS_REFERENCES ((int32_t)0x803B002Cu)

typedef enum { K_NETWORK = 0, K_ENDPOINT = 1, K_LB = 2 } obj_kind;
#define NKINDS 3

typedef struct obj {
  obj_kind kind;
  char *key;   /* upper-case ID: the index key */
  char *text;  /* the object as HNS returns it, "ID" first: its document, serialized */
  size_t text_len;
  struct obj *prev, *next;
  int64_t refs; /* network: endpoints in it; endpoint: LBs referencing it */
  char *net_key; /* endpoint: the network it is counted in, or NULL */
  char **idx;    /* endpoint: IP index keys; LB: frontend port keys */
  size_t nidx;
  char **ep_keys; /* LB: endpoints it holds a reference on */
  size_t nep;
  /* The doc's "ID" as a JSON string literal (quoted, escaped), for Enumerate: one copy
   * per object instead of a walk of its doc. The ID never changes once linked. */
  char *id_json;
  size_t id_json_len;
  /* Endpoint: the doc's HostComputeNetwork (else VirtualNetwork) if it is a string, for
   * O(1) network filters; NULL when absent or not a string (filters read the doc then). */
  char *net_val;
  size_t net_val_len;
  size_t slot; /* index of its entry in the store's list of its kind */
} obj;

/* Bytes of an ID or network value kept in a list entry itself. */
#define LIST_INLINE 40

/*
 * An object in its kind's list, in creation order: what Enumerate reads, in
 * one sequential pass without touching the object (idlen/netlen above
 * LIST_INLINE: read obj->id_json/net_val; netlen SIZE_MAX: no cached value).
 * o is NULL for an entry of a deleted object, until the list is compacted.
 */
typedef struct listent {
  obj *o;
  size_t idlen, netlen;
  char id[LIST_INLINE];
  char net[LIST_INLINE];
} listent;

typedef struct store {
  hmap by_id[NKINDS];
  obj *head[NKINDS], *tail[NKINDS];
  size_t count[NKINDS];
  size_t id_json_bytes[NKINDS]; /* sum of id_json_len per kind: an Enumerate's size */
  listent *list[NKINDS];        /* per kind, in creation order (the order of head/next) */
  size_t nlist[NKINDS], caplist[NKINDS], ndead[NKINDS];
  hmap ep_ip;   /* "<network key>|<canonical ip>" -> endpoint */
  hmap lb_port; /* "<canonical vip or empty>|<protocol>|<external port>" -> LB */
  uint64_t rng;
} store;

void store_init(store *s);
void store_clear(store *s);
/* The "not found" HRESULT of a kind. */
int32_t store_not_found(obj_kind k);
obj *store_find(const store *s, obj_kind k, const char *id);
/* Random v4 GUID, upper case, no braces. */
void store_new_guid(store *s, char out[37]);
/* "{a-b-c-d-e}" or "a-b-c-d-e" in any case to the canonical form; 0 when not a GUID. */
int guid_canonical(const char *in, char out[37]);

/*
 * Create an object from settings (takes ownership). id is a canonical GUID or
 * NULL to assign one; net_key names the network of an endpoint.
 */
int32_t store_create(store *s, obj_kind k, const char *id, const char *net_key, jval *settings,
                     obj **out);
/* Modify (takes ownership of settings): LBs are replaced, networks/endpoints get their Policies changed. */
int32_t store_modify(store *s, obj *o, jval *settings);
int32_t store_delete(store *s, obj_kind k, const char *id);
/* Append the JSON array of matching IDs. filter is an object or NULL. */
void store_enumerate(const store *s, obj_kind k, const jval *filter, sbuf *out);

/* Serialize everything as {"Networks":[...],"Endpoints":[...],"LoadBalancers":[...]}. */
void store_dump(const store *s, sbuf *out);
/*
 * Replace the contents with a document in that format. Objects are taken as
 * they are (a malformed LB still loads); *changed is set when IDs had to be
 * assigned or normalized, so the caller writes the file back. 0 ok, -1 error.
 */
int store_load(store *s, const jval *doc, int *changed, char *err, size_t errlen);

#endif
