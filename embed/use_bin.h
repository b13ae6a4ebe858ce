/* semcached's own model file: USE-lite's architecture (embed/use.h) with
 * weights trained for caching (tools/train/), in one checked binary file.
 *
 * A model directory holds model.bin and vocab.json (the SentencePiece
 * pieces, as in the USE-lite npm package). model.bin, all little-endian:
 *
 *   off  size  field
 *     0     8  magic "SCEMBED\0"
 *     8     4  format version (1, or 2 when a flag is set)
 *    12     4  dtype of the tensors: 1 float32, 2 float16 (IEEE binary16)
 *    16     4  n_vocab_rows        20  4  emb_dim (256)
 *    24     4  out_dim (512)       28  4  max_len (positions kept)
 *    32  2x16  per layer: in, width, heads, ffn (u32 each)
 *    64  2x4   per layer: query scale (f32)
 *    72     4  ln_eps (f32)        76  4  l2_eps (f32)
 *    80     8  payload bytes (u64) 88  8  XXH3-64 of the payload (u64)
 *    96    32  model name, NUL-padded ("semcache-embed-v1"); in version
 *              2 the name has 28 bytes (96..123) and 124..127 are flags
 *              (u32): bit 0 SC_USE_BIN_FOLD, the model was trained on folded
 *              text and is served so (use.h); other bits are refused
 *   128     .  payload: the tensors in this order, no padding:
 *              emb [V, E], inv_timescales [E/2], then per layer ln1_g,
 *              ln1_b [in], qkv_w [in, 3 in], qkv_b [3 in], out_w
 *              [in, width], out_b [width], (layer 0 only, in != width:
 *              res_w [in, width], res_b [width]), ln2_g, ln2_b [width],
 *              ffn1_w [width, ffn], ffn1_b [ffn], ffn2_w [ffn, width],
 *              ffn2_b [width]; then tanh_w [out, out], tanh_b [out].
 *
 * The loader trusts nothing: the magic, version, dtype, every dimension
 * (bounded, and consistent with the architecture), the exact file size and
 * the checksum are checked, and every float must be finite. Errors name the
 * file and what is wrong (size, checksum, shape). tools/train/ writes the
 * same layout from PyTorch (tools/train/scmodel.py). */
#ifndef SC_EMBED_USE_BIN_H
#define SC_EMBED_USE_BIN_H

#include "embed/use.h"

#include <stdint.h>
#include "common/half.h"          /* sc_half_to_float, sc_float_to_half */

#define SC_USE_BIN_MAGIC "SCEMBED"
#define SC_USE_BIN_VERSION 1u      /* no flags */
#define SC_USE_BIN_VERSION_FLAGS 2u
#define SC_USE_BIN_FOLD 1u
#define SC_USE_BIN_HEADER 128u
#define SC_USE_BIN_F32 1u
#define SC_USE_BIN_F16 2u

/* Loads dir/model.bin and dir/vocab.json into a model that sc_use_forward()
 * runs (weights widened to float32). *name receives the model's name from
 * the header (name must hold 33 bytes). */
int sc_use_bin_load(sc_use_model **out, const char *dir, char name[33], char *err, size_t errlen);
/* The same, also giving the payload's checksum (*sum, when sum != NULL). */
int sc_use_bin_load_sum(sc_use_model **out, const char *dir, char name[33], uint64_t *sum, char *err,
                        size_t errlen);

/* Writes m to path in the layout above (dtype SC_USE_BIN_F32 or _F16),
 * atomically (a temporary file renamed over path); version 2 with
 * SC_USE_BIN_FOLD when m's vocab folds, else version 1. */
int sc_use_bin_save(const sc_use_model *m, const char *path, uint32_t dtype, const char *name);


#endif
