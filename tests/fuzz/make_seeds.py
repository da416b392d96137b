#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets: small GGUF files (written here from the format's
specification, independently of the C writer) and tokenizer inputs.

    python3 tests/fuzz/make_seeds.py        # (re)writes tests/fuzz/corpus/{gguf,tokenize}/seed-*
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
       U64: "<Q", I64: "<q", F64: "<d"}


def s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack("<Q", len(b)) + b


def value(t, v):
    if t == STR:
        return s(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(value(et, i) for i in items)
    return struct.pack(FMT[t], v)


def gguf(kvs, tensors=(), version=3, align=32):
    """kvs: [(key, type, value)]; tensors: [(name, ne, ggml_type, data_bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += s(k) + struct.pack("<I", t) + value(t, v)
    off, datas = 0, b""
    for name, ne, gt, data in tensors:
        out += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", gt, off)
        datas += data + b"\0" * ((-len(data)) % align)
        off = len(datas)
    if tensors:
        out += b"\0" * ((-len(out)) % align)
    return out + datas


def f32s(n, scale=0.01):
    return b"".join(struct.pack("<f", scale * ((i * 7919) % 13 - 6)) for i in range(n))


def f16s(n):
    return b"".join(struct.pack("<e", 0.01 * ((i * 31) % 11 - 5)) for i in range(n))


def bf16s(n):
    return b"".join(struct.pack("<f", 0.02 * ((i * 17) % 9 - 4))[2:] for i in range(n))


def q8_0(n):
    blocks = b""
    for b in range(n // 32):
        blocks += struct.pack("<e", 0.01) + bytes(((i * 5 + b) % 255) - 127 & 0xFF for i in range(32))
    return blocks


def bytes_to_unicode():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def main():
    gdir, tdir = os.path.join(HERE, "corpus", "gguf"), os.path.join(HERE, "corpus", "tokenize")
    os.makedirs(gdir, exist_ok=True)
    os.makedirs(tdir, exist_ok=True)
    seeds = {}
    seeds["empty-v3"] = gguf([])
    seeds["scalars-v2"] = gguf([("a.u8", U8, 7), ("a.i8", I8, -7), ("a.u16", U16, 700),
                                ("a.i16", I16, -700), ("a.u32", U32, 70000), ("a.i32", I32, -70000),
                                ("a.f32", F32, 0.5), ("a.bool", BOOL, 1), ("a.str", STR, "h\u00e9"),
                                ("a.u64", U64, 1 << 40), ("a.i64", I64, -(1 << 40)),
                                ("a.f64", F64, 1e-300), ("a.arr", ARR, (I32, [1, -2, 3])),
                                ("a.sarr", ARR, (STR, ["x", "", "yz"]))], version=2)
    # a tiny llama model: C 4, L 1, NH 2, NKV 1, HS 2, FF 8, V 8; every convertible type
    C, FF, V = 4, 32, 8
    spm_tokens = ["<unk>", "<s>", "</s>", "\u2581", "a", "b", "\u2581a", "<0x0A>"]
    model_kv = [("general.architecture", STR, "llama"), ("general.name", STR, "seed"),
                ("llama.context_length", U32, 16), ("llama.embedding_length", U32, C),
                ("llama.block_count", U32, 1), ("llama.feed_forward_length", U32, FF),
                ("llama.attention.head_count", U32, 2), ("llama.attention.head_count_kv", U32, 1),
                ("llama.rope.freq_base", F32, 10000.0),
                ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
                ("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.pre", STR, "default"),
                ("tokenizer.ggml.tokens", ARR, (STR, spm_tokens)),
                ("tokenizer.ggml.scores", ARR, (F32, [0, 0, 0, -1, -2, -2, -0.5, 0])),
                ("tokenizer.ggml.token_type", ARR, (I32, [2, 3, 3, 1, 1, 1, 1, 6])),
                ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2)]
    tens = [("token_embd.weight", [C, V], 0, f32s(C * V)),
            ("blk.0.attn_norm.weight", [C], 0, f32s(C)),
            ("blk.0.attn_q.weight", [C, C], 1, f16s(C * C)),
            ("blk.0.attn_k.weight", [C, 2], 30, bf16s(C * 2)),
            ("blk.0.attn_v.weight", [C, 2], 0, f32s(C * 2)),
            ("blk.0.attn_output.weight", [C, C], 0, f32s(C * C)),
            ("blk.0.ffn_norm.weight", [C], 0, f32s(C)),
            ("blk.0.ffn_gate.weight", [32, 1], 8, q8_0(32)),
            ("output_norm.weight", [C], 0, f32s(C))]
    seeds["tiny-llama"] = gguf(model_kv, tens)
    seeds["tiny-llama-v2-align64"] = gguf(model_kv + [("general.alignment", U32, 64)], tens[:3],
                                          version=2, align=64)
    b2u = bytes_to_unicode()
    bytes_tok = [b2u[b] for b in range(256)]
    merges = [b2u[32] + " t", "t h", b2u[32] + "t h", "h e", "a b"]
    bpe_tokens = bytes_tok + [b2u[32] + "t", "th", b2u[32] + "th", "he", "ab", "<|endoftext|>",
                              "<|user|>"]
    types = [1] * (len(bpe_tokens) - 2) + [3, 4]
    for pre in ["gpt-2", "llama-bpe", "qwen2", "deepseek-coder", "deepseek-llm", "smollm",
                "falcon", "default", "tekken"]:
        seeds["bpe-" + pre] = gguf([("tokenizer.ggml.model", STR, "gpt2"),
                                    ("tokenizer.ggml.pre", STR, pre),
                                    ("tokenizer.ggml.tokens", ARR, (STR, bpe_tokens)),
                                    ("tokenizer.ggml.token_type", ARR, (I32, types)),
                                    ("tokenizer.ggml.merges", ARR, (STR, merges)),
                                    ("tokenizer.ggml.bos_token_id", U32, len(bpe_tokens) - 2),
                                    ("tokenizer.ggml.eos_token_id", U32, len(bpe_tokens) - 2),
                                    ("tokenizer.ggml.add_bos_token", BOOL, 1)])
    seeds["spm-phi3"] = gguf([("general.name", STR, "Phi-3 mini"),
                              ("tokenizer.ggml.model", STR, "llama"),
                              ("tokenizer.ggml.tokens", ARR, (STR, spm_tokens + ["<|end|>", "<|user|>"])),
                              ("tokenizer.ggml.scores", ARR, (F32, [0.0] * 10)),
                              ("tokenizer.ggml.token_type", ARR, (I32, [2, 3, 3, 1, 1, 1, 1, 6, 3, 4])),
                              ("tokenizer.ggml.add_space_prefix", BOOL, 0)])
    for name, data in seeds.items():
        with open(os.path.join(gdir, "seed-" + name + ".gguf"), "wb") as f:
            f.write(data)
    texts = [b"\x00Hello world", b"\x11 Hello, y'all! How are you \xf0\x9f\x98\x81 ?",
             b"\x02\n\n\n   \t\t 333333333", b"\x43<s>Hello</s> <|endoftext|>\xff\xfe",
             b"\x21\xe1\x9e\x80\xe1\x9e\xb6\xe1\x9e\x93\xe1\x9f\x8b \xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe",
             b"\x30caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 don't 3.14 x=y+1;"]
    for i, t in enumerate(texts):
        with open(os.path.join(tdir, "seed-%d.txt" % i), "wb") as f:
            f.write(t)


if __name__ == "__main__":
    main()
