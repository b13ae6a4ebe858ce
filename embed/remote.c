/* Placeholder for the remote backend (being written). */
#include "embed/embed_internal.h"

#include "common/err.h"

#include <stdio.h>

static int remote_open(sc_embedder *e, const sc_embedder_opts *o, char *err, size_t errlen)
{
    snprintf(err, errlen, "embedder remote: not implemented yet");
    return SC_EUNSUPPORTED;
}

static void remote_close(sc_embedder *e) {}

const sc_embed_backend sc_embed_remote_backend = {
    .name = "remote",
    .open = remote_open,
    .close = remote_close,
};
