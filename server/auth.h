/* Client API keys: each maps to a namespace and a role (api-key directive,
 * "KEY NAMESPACE user|admin"). With no key configured auth is off.
 * Keys are compared in constant time and never logged. Read-only after
 * creation; any thread. */
#ifndef SC_AUTH_H
#define SC_AUTH_H

#include "common/config.h"

#include <stddef.h>

typedef struct sc_auth sc_auth;

enum sc_role { SC_ROLE_NONE = 0, SC_ROLE_USER = 1, SC_ROLE_ADMIN = 2 };

int sc_auth_create(sc_auth **out, const sc_config *cfg, char *err, size_t errlen);
void sc_auth_destroy(sc_auth *a);
/* 1 when keys are configured. */
int sc_auth_enabled(const sc_auth *a);
/* Checks a presented key (len bytes). On success returns the role and sets
 * *ns to the key's namespace (valid as long as a); SC_ROLE_NONE if no key
 * matches. */
int sc_auth_check(const sc_auth *a, const char *key, size_t len, const char **ns);
/* Extracts the key from "Authorization: Bearer KEY" (or a bare key). */
const char *sc_auth_bearer(const char *header, size_t *len);

#endif
