/* Context fingerprints of OpenAI requests (pure; any thread).
 *
 * The fingerprint is a hash of everything in the request that changes the
 * right answer except the last user message: the endpoint, model, every
 * earlier message (system/developer prompts, earlier turns, tool calls and
 * results), tools, tool_choice, response_format and every sampling
 * parameter. It is computed from the request object with the fields that
 * do not change the answer removed (stream, stream_options, user,
 * metadata, store, service_tier) and the rest serialised canonically
 * (sorted keys), so an unknown new parameter changes the fingerprint
 * rather than being ignored. Requests that differ only in how they state
 * a top-level parameter share a fingerprint: an integral real equals the
 * integer (temperature 2.0 == 2; non-integral reals stay exact, 0.7 !=
 * 0.70001), and n 1, temperature 1, top_p 1, presence_penalty 0 and
 * frequency_penalty 0 (the OpenAI API reference's defaults) equal leaving
 * the parameter out. Nested values (messages, tools, response_format) are
 * hashed as sent. fp 0 is reserved for the plain partition. */
#ifndef SC_FINGERPRINT_H
#define SC_FINGERPRINT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum sc_fp_kind { SC_FP_CHAT, SC_FP_COMPLETION };

/* Validates an OpenAI request body and computes its fingerprint and the
 * prompt to key on (the last user message's text, or the completion
 * prompt). *prompt is malloc'ed (caller frees). Returns SC_OK,
 * SC_EINVAL with a message naming the problem (400), or SC_EUNSUPPORTED
 * when the request cannot be cached (e.g. the last message is not from
 * the user, several prompts, n > 1): forward it uncached. */
int sc_fp_request(int kind, json_t *body, uint64_t *fp, char **prompt, size_t *prompt_len,
                  char *err, size_t errlen);

/* The fingerprint a chat request {"model": model, "messages": [one user
 * message]} with no other parameter has: /cache/store with a model stores
 * into that partition, so pre-loaded answers serve plain proxy requests. */
uint64_t sc_fp_for_model(const char *model);

#endif
