/* Placeholder for the USE-lite backend (being written). */
#include "embed/embed_internal.h"

#include "common/err.h"

#include <stdio.h>

static int use_open(sc_embedder *e, const sc_embedder_opts *o, char *err, size_t errlen)
{
    snprintf(err, errlen, "embedder use-lite: not implemented yet");
    return SC_EUNSUPPORTED;
}

static void use_close(sc_embedder *e) {}

const sc_embed_backend sc_embed_use_backend = {
    .name = "use-lite",
    .open = use_open,
    .close = use_close,
};
