"""The rlaif transformer written plainly in PyTorch: the reference the C engine is tested
against (tests/ref/gen_model_ref.py) and the PyTorch side of `make bench` (tools/bench_torch.py).

Parameters are a dict keyed by the GGUF tensor names of include/model.h, with the same
row-major (out, in) shapes, so weights move between the two sides by name.
Not here: anything copied from another project; tokenisers; generation."""
import math

import torch
import torch.nn.functional as F


def tensor_shapes(cfg):
    """(name, shape, decay) in the C buffer order (src/model.c)."""
    C, HS, V = cfg["dim"], cfg["head_dim"], cfg["vocab_size"]
    NH, NKV, FF = cfg["n_heads"], cfg["n_kv_heads"], cfg["ffn_dim"]
    out = [("token_embd.weight", (V, C), True)]
    for l in range(cfg["n_layers"]):
        p = "blk.%d." % l
        out += [(p + "attn_norm.weight", (C,), False),
                (p + "attn_q.weight", (NH * HS, C), True),
                (p + "attn_k.weight", (NKV * HS, C), True),
                (p + "attn_v.weight", (NKV * HS, C), True)]
        if cfg["qkv_bias"]:
            out += [(p + "attn_q.bias", (NH * HS,), False),
                    (p + "attn_k.bias", (NKV * HS,), False),
                    (p + "attn_v.bias", (NKV * HS,), False)]
        out += [(p + "attn_output.weight", (C, NH * HS), True),
                (p + "ffn_norm.weight", (C,), False),
                (p + "ffn_gate.weight", (FF, C), True),
                (p + "ffn_up.weight", (FF, C), True),
                (p + "ffn_down.weight", (C, FF), True)]
    out.append(("output_norm.weight", (C,), False))
    if not cfg["tied_output"]:
        out.append(("output.weight", (V, C), True))
    if cfg["scalar_head"]:
        out += [("score_head.weight", (C,), False), ("score_head.bias", (1,), False)]
    return out


def rope_tables(T, HS, theta, dtype):
    j = torch.arange(HS // 2, dtype=torch.float64)
    freq = theta ** (-2.0 * j / HS)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def rope(x, cos, sin, neox):
    """x (B, T, H, HS); cos, sin (T, HS/2)."""
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    if neox:
        half = x.shape[-1] // 2
        x0, x1 = x[..., :half], x[..., half:]
        return torch.cat([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(-2)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def forward_hidden(P, cfg, tokens):
    """tokens (B, T) -> final normed hidden states (B, T, C)."""
    B, T = tokens.shape
    NH, NKV, HS = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"]
    eps = cfg["norm_eps"]
    x = P["token_embd.weight"][tokens]
    cos, sin = rope_tables(T, HS, cfg["rope_theta"], x.dtype)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    for l in range(cfg["n_layers"]):
        p = "blk.%d." % l
        h = rmsnorm(x, P[p + "attn_norm.weight"], eps)
        q = F.linear(h, P[p + "attn_q.weight"], P.get(p + "attn_q.bias"))
        k = F.linear(h, P[p + "attn_k.weight"], P.get(p + "attn_k.bias"))
        v = F.linear(h, P[p + "attn_v.weight"], P.get(p + "attn_v.bias"))
        q = rope(q.view(B, T, NH, HS), cos, sin, cfg["rope_neox"]).transpose(1, 2)
        k = rope(k.view(B, T, NKV, HS), cos, sin, cfg["rope_neox"]).transpose(1, 2)
        v = v.view(B, T, NKV, HS).transpose(1, 2)
        if NKV != NH:  # query head h reads kv head h // (NH / NKV)
            k = k.repeat_interleave(NH // NKV, dim=1)
            v = v.repeat_interleave(NH // NKV, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HS)
        a = torch.softmax(s.masked_fill(causal, float("-inf")), dim=-1)
        o = (a @ v).transpose(1, 2).reshape(B, T, NH * HS)
        x = x + F.linear(o, P[p + "attn_output.weight"])
        h = rmsnorm(x, P[p + "ffn_norm.weight"], eps)
        g = F.linear(h, P[p + "ffn_gate.weight"])
        u = F.linear(h, P[p + "ffn_up.weight"])
        x = x + F.linear(F.silu(g) * u, P[p + "ffn_down.weight"])
    return rmsnorm(x, P["output_norm.weight"], eps)


def output_matrix(P, cfg):
    return P["token_embd.weight"] if cfg["tied_output"] else P["output.weight"]


def lr_at(opt, step):
    """The schedule of src/optim.c: linear warm-up, then cosine to min_lr_frac * lr."""
    lr, wu, tot = opt["lr"], opt["warmup_steps"], opt["total_steps"]
    if step < wu:
        return lr * (step + 1) / wu
    if tot <= wu:
        return lr
    prog = min(1.0, (step - wu) / (tot - wu))
    lo = opt["min_lr_frac"] * lr
    return lo + 0.5 * (lr - lo) * (1 + math.cos(math.pi * prog))
