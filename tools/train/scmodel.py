"""USE-lite's architecture in PyTorch, and model.bin reading and writing.

The forward pass is the one of embed/use_forward.c (see its header):
x = 2 E[id] + timing(pos); two transformer layers (256 -> 512 -> 512,
pre-layer-norm, 4 heads, ReLU FFN 3x wide); mean over the positions; tanh
layer; L2 normalisation. model.bin's layout is documented in
embed/use_bin.h; the C loader checks everything this writes.
"""
import ctypes
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MAGIC = b"SCEMBED\0"
HEADER = 128
F32, F16 = 1, 2
FOLD = 1          # header flag (version 2): the model is served on folded text

_xxh = None


def xxh3_64(data: bytes, seed: int = 0) -> int:
    """XXH3-64 through Debian's libxxhash (the C side's sc_hash64)."""
    global _xxh
    if _xxh is None:
        _xxh = ctypes.CDLL("libxxhash.so.0")
        _xxh.XXH3_64bits_withSeed.restype = ctypes.c_uint64
        _xxh.XXH3_64bits_withSeed.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    return _xxh.XXH3_64bits_withSeed(data, len(data), seed)


class Layer(nn.Module):
    def __init__(self, d_in, width, heads):
        super().__init__()
        self.d_in, self.width, self.heads = d_in, width, heads
        self.scale = 1.0 / math.sqrt(d_in // heads)
        self.ln1 = nn.LayerNorm(d_in)
        self.qkv = nn.Linear(d_in, 3 * d_in)
        self.out = nn.Linear(d_in, width)
        self.res = nn.Linear(d_in, width) if d_in != width else None
        self.ln2 = nn.LayerNorm(width)
        self.ffn1 = nn.Linear(width, 3 * width)
        self.ffn2 = nn.Linear(3 * width, width)

    def forward(self, x, keymask):
        # x [B, T, in]; keymask [B, T] True where a real token is.
        B, T, _ = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(h).split(self.d_in, dim=-1)
        dh = self.d_in // self.heads
        q = q.view(B, T, self.heads, dh).transpose(1, 2)
        k = k.view(B, T, self.heads, dh).transpose(1, 2)
        v = v.view(B, T, self.heads, dh).transpose(1, 2)
        s = torch.matmul(q * self.scale, k.transpose(-1, -2))
        s = s.masked_fill(~keymask[:, None, None, :], -1e9)
        a = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, T, self.d_in)
        y = self.out(a) + (self.res(x) if self.res is not None else x)
        return y + self.ffn2(F.relu(self.ffn1(self.ln2(y))))


class UseLite(nn.Module):
    def __init__(self, n_vocab=8002, emb_dim=256, out_dim=512, max_len=128, heads=(4, 4),
                 ln_eps=1e-6, l2_eps=1e-12):
        super().__init__()
        self.emb = nn.Embedding(n_vocab, emb_dim)
        self.register_buffer("inv_timescales", torch.zeros(emb_dim // 2))
        self.layers = nn.ModuleList([Layer(emb_dim, out_dim, heads[0]), Layer(out_dim, out_dim, heads[1])])
        self.tanh = nn.Linear(out_dim, out_dim)
        self.max_len, self.l2_eps = max_len, l2_eps
        self.set_ln_eps(ln_eps)
        self.name = "use-lite-export"

    def set_ln_eps(self, eps):
        self.ln_eps = eps
        for L in self.layers:
            L.ln1.eps = eps
            L.ln2.eps = eps

    def timing(self, T):
        pos = torch.arange(T, dtype=torch.float32)[:, None] * self.inv_timescales[None, :]
        return torch.cat([torch.sin(pos), torch.cos(pos)], dim=-1)

    def forward(self, ids, lens):
        # ids [B, T] (0-padded), lens [B]
        B, T = ids.shape
        mask = torch.arange(T)[None, :] < lens[:, None]
        e = self.emb(ids)
        x = e + (e + self.timing(T)[None])
        for L in self.layers:
            x = L(x, mask)
        m = (x * mask[..., None]).sum(1) / lens.clamp(min=1)[:, None].float()
        v = torch.tanh(self.tanh(m))
        ss = (v * v).sum(-1, keepdim=True)
        return v / torch.sqrt(ss.clamp(min=self.l2_eps))


# ---- model.bin ---------------------------------------------------------------

def _tensors(model):
    """(tensor, shape-as-stored) in file order; Linear weights are stored
    [in, out] (x W), PyTorch keeps [out, in]."""
    out = [model.emb.weight, model.inv_timescales]
    for L in model.layers:
        out += [L.ln1.weight, L.ln1.bias, L.qkv.weight.t(), L.qkv.bias, L.out.weight.t(), L.out.bias]
        if L.res is not None:
            out += [L.res.weight.t(), L.res.bias]
        out += [L.ln2.weight, L.ln2.bias, L.ffn1.weight.t(), L.ffn1.bias, L.ffn2.weight.t(), L.ffn2.bias]
    out += [model.tanh.weight.t(), model.tanh.bias]
    return out


def load_bin(path):
    data = open(path, "rb").read()
    if len(data) < HEADER or data[:8] != MAGIC:
        raise ValueError(f"{path}: not a semcached model file")
    version, dtype, nv, ed, od, ml = struct.unpack_from("<6I", data, 8)
    lay = [struct.unpack_from("<4I", data, 32 + 16 * l) for l in range(2)]
    scales = struct.unpack_from("<2f", data, 64)
    ln_eps, l2_eps = struct.unpack_from("<2f", data, 72)
    payload, checksum = struct.unpack_from("<2Q", data, 80)
    if version not in (1, 2):
        raise ValueError(f"{path}: format version {version}, this reads 1 and 2")
    flags = struct.unpack_from("<I", data, 124)[0] if version == 2 else 0
    if flags & ~FOLD:
        raise ValueError(f"{path}: unknown flags 0x{flags & ~FOLD:x} in the header")
    name = data[96:124 if version == 2 else 128].split(b"\0")[0].decode()
    if dtype not in (F32, F16):
        raise ValueError(f"{path}: unknown tensor dtype {dtype}")
    if len(data) != HEADER + payload:
        raise ValueError(f"{path}: size {len(data)} bytes, the header says {HEADER + payload} (truncated?)")
    if xxh3_64(data[HEADER:]) != checksum:
        raise ValueError(f"{path}: checksum mismatch (the file is corrupted)")
    model = UseLite(nv, ed, od, ml, (lay[0][2], lay[1][2]), ln_eps, l2_eps)
    model.name = name
    model.fold = bool(flags & FOLD)
    for L, s in zip(model.layers, scales):
        L.scale = s
    np_dtype = np.float32 if dtype == F32 else np.float16
    flat = np.frombuffer(data, dtype=np_dtype, offset=HEADER).astype(np.float32)
    if flat.size != sum(t.numel() for t in _tensors(model)):
        raise ValueError(f"{path}: payload does not match the shapes in the header")
    if not np.isfinite(flat).all():
        raise ValueError(f"{path}: a weight is not finite")
    off = 0
    with torch.no_grad():
        for t in _tensors(model):
            n = t.numel()
            t.copy_(torch.from_numpy(flat[off:off + n].copy()).view(t.shape))
            off += n
    assert off == flat.size
    return model


def save_bin(model, path, dtype=F16, name="semcache-embed-v1", fold=False):
    """Version 1, or version 2 with the FOLD flag when fold (the model was
    trained on folded text; the server then folds what it embeds)."""
    np_dtype = np.float32 if dtype == F32 else np.float16
    parts = [t.detach().contiguous().float().numpy().astype(np_dtype).tobytes() for t in _tensors(model)]
    payload = b"".join(parts)
    hdr = bytearray(HEADER)
    hdr[:8] = MAGIC
    L0, L1 = model.layers
    struct.pack_into("<6I", hdr, 8, 2 if fold else 1, dtype, model.emb.num_embeddings, model.emb.embedding_dim,
                     model.tanh.out_features, model.max_len)
    for l, L in enumerate(model.layers):
        struct.pack_into("<4I", hdr, 32 + 16 * l, L.d_in, L.width, L.heads, 3 * L.width)
        struct.pack_into("<f", hdr, 64 + 4 * l, L.scale)
    struct.pack_into("<2f", hdr, 72, model.ln_eps, model.l2_eps)
    struct.pack_into("<2Q", hdr, 80, len(payload), xxh3_64(payload))
    nb = name.encode()
    if len(nb) > (27 if fold else 31) or not all(c.isascii() and (c.isalnum() or c in "._-") for c in name):
        raise ValueError(f"model name {name!r}: at most {27 if fold else 31} bytes of [A-Za-z0-9._-]")
    hdr[96:96 + len(nb)] = nb
    if fold:
        struct.pack_into("<I", hdr, 124, FOLD)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(bytes(hdr) + payload)
    import os
    os.replace(tmp, path)


def batch_ids(seqs, max_len):
    """List of id lists -> (ids [B, T] long, lens [B] long), clipped."""
    seqs = [s[:max_len] for s in seqs]
    T = max(1, max(len(s) for s in seqs))
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, torch.tensor([len(s) for s in seqs], dtype=torch.long)
