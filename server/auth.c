/* Client API keys, checked in constant time against every configured key
 * (so neither a match's position nor a prefix length leaks through time). */
#include "server/auth.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 256

typedef struct key {
    char key[KEY_MAX];
    size_t len;
    char *ns;
    int role;
} key;

struct sc_auth {
    key *keys;
    size_t n;
};

int sc_auth_create(sc_auth **out, const sc_config *cfg, char *err, size_t errlen)
{
    sc_auth *a = SC_NEW(sc_auth);
    a->keys = sc_calloc(cfg->api_keys.n ? cfg->api_keys.n : 1, sizeof *a->keys);
    for (size_t i = 0; i < cfg->api_keys.n; i++) {
        char k[KEY_MAX + 1], ns[257], role[16];
        int n = sscanf(cfg->api_keys.items[i], "%256s %256s %15s", k, ns, role);
        if (n != 3 || (strcmp(role, "user") && strcmp(role, "admin")) || strlen(k) >= KEY_MAX) {
            snprintf(err, errlen, "bad value for 'api-key' (entry %zu): want 'KEY NAMESPACE user|admin', key under %d bytes",
                     i + 1, KEY_MAX);
            sc_auth_destroy(a);
            return SC_EINVAL;
        }
        key *e = &a->keys[a->n++];
        e->len = strlen(k);
        memcpy(e->key, k, e->len);
        e->ns = sc_strdup(ns);
        e->role = strcmp(role, "admin") == 0 ? SC_ROLE_ADMIN : SC_ROLE_USER;
    }
    *out = a;
    return SC_OK;
}

void sc_auth_destroy(sc_auth *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) free(a->keys[i].ns);
    free(a->keys);
    free(a);
}

int sc_auth_enabled(const sc_auth *a) { return a && a->n > 0; }

int sc_auth_check(const sc_auth *a, const char *k, size_t len, const char **ns)
{
    int role = SC_ROLE_NONE;
    if (!a || !k) return role;
    for (size_t i = 0; i < a->n; i++) {
        const key *e = &a->keys[i];
        /* Compare over the full slot whatever the lengths; fold the length
         * difference into the result. */
        unsigned diff = (unsigned)(len ^ e->len);
        for (size_t j = 0; j < KEY_MAX; j++) {
            unsigned char x = j < len ? (unsigned char)k[j] : 0;
            diff |= (unsigned)(x ^ (unsigned char)e->key[j]);
        }
        if (len > KEY_MAX) diff |= 1;
        if (diff == 0) {
            role = e->role;
            *ns = e->ns;
        }
    }
    return role;
}

const char *sc_auth_bearer(const char *h, size_t *len)
{
    if (!h) return NULL;
    while (*h == ' ') h++;
    if (strncasecmp(h, "bearer ", 7) == 0) h += 7;
    while (*h == ' ') h++;
    size_t n = strlen(h);
    while (n > 0 && h[n - 1] == ' ') n--;
    *len = n;
    return n ? h : NULL;
}
