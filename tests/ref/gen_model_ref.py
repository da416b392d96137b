"""Writes the PyTorch reference that tests/unit/test_model_ref.c checks the C engine against.

For each of three configurations (multi-head; grouped-query; tied output + q/k/v biases +
neox rotary) it draws float32 weights and a batch, computes in float64 and stores in HDF5:
weights, inputs (tokens, targets, loss mask, selected positions and their loss coefficients,
scalar-head positions and coefficients), logits, cross-entropy, log-probs, entropies, scores,
the gradient of every parameter for the cross-entropy alone and for the combined loss

    L = CE(mask) + sum dlogprob * logprob + sum dentropy * entropy + sum dscore * score

and the parameters after 3 AdamW steps on L (weight decay, clipping, warm-up + cosine).

usage: gen_model_ref.py OUT.h5"""
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_model as tm  # noqa: E402

CONFIGS = {
    "mha": dict(dim=32, n_layers=2, n_heads=4, n_kv_heads=4, head_dim=8, ffn_dim=56,
                vocab_size=67, max_seq=16, rope_theta=10000.0, rope_neox=0, norm_eps=1e-5,
                qkv_bias=0, tied_output=0, scalar_head=1),
    "gqa": dict(dim=48, n_layers=2, n_heads=6, n_kv_heads=2, head_dim=8, ffn_dim=80,
                vocab_size=71, max_seq=16, rope_theta=500000.0, rope_neox=0, norm_eps=1e-6,
                qkv_bias=0, tied_output=0, scalar_head=1),
    # A small rotary base on purpose: with a large one the lowest rotary frequency barely turns
    # over 11 positions, a key bias there is almost softmax-invariant, its gradient ~1e-7 is
    # float32 noise, and Adam (which normalises by |g|) turns that noise into lr-sized steps.
    "tied_bias_neox": dict(dim=32, n_layers=3, n_heads=4, n_kv_heads=1, head_dim=12,
                           ffn_dim=64, vocab_size=53, max_seq=16, rope_theta=100.0,
                           rope_neox=1, norm_eps=1e-5, qkv_bias=1, tied_output=1,
                           scalar_head=1),
}
B, T = 3, 11
OPT = dict(lr=2e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, warmup_steps=2,
           total_steps=6, min_lr_frac=0.1)


def make_weights(cfg, gen):
    W = {}
    for name, shape, _ in tm.tensor_shapes(cfg):
        if name.endswith("norm.weight"):
            w = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith(".bias"):
            w = 0.1 * torch.randn(shape, generator=gen)
        elif name == "token_embd.weight":
            w = torch.randn(shape, generator=gen)
        else:
            w = torch.randn(shape, generator=gen) / np.sqrt(shape[-1] if len(shape) > 1 else shape[0])
        W[name] = w.float()
    return W


def make_inputs(cfg, gen):
    V = cfg["vocab_size"]
    tokens = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    lens = [T, T - 3, T - 5]           # padded rows
    prompt = [4, 2, 3]                 # prompt tokens excluded from the loss
    mask = torch.zeros(B, T)
    for b in range(B):
        mask[b, prompt[b]:lens[b]] = 1.0
    sel = mask.clone()
    sel[0, T - 1] = 0.0                # not the same set as the mask
    dlogprob = torch.randn(B, T, generator=gen) * 0.3 * sel
    dentropy = torch.randn(B, T, generator=gen) * 0.3 * sel
    score_pos = torch.tensor([b * T + lens[b] - 1 for b in range(B)] + [1 * T + 4])
    dscore = torch.randn(len(score_pos), generator=gen)
    return dict(tokens=tokens, targets=targets, mask=mask, sel=sel, dlogprob=dlogprob,
                dentropy=dentropy, score_pos=score_pos, dscore=dscore)


def losses(P, cfg, I):
    h = tm.forward_hidden(P, cfg, I["tokens"])
    logits = h @ tm.output_matrix(P, cfg).t()
    logp = torch.log_softmax(logits, dim=-1)
    lp_t = logp.gather(-1, I["targets"][..., None])[..., 0]
    ce = -(lp_t * I["mask"]).sum() / I["mask"].sum()
    ent = -(logp.exp() * logp).sum(-1)
    hf = h.reshape(B * T, -1)[I["score_pos"]]
    score = hf @ P["score_head.weight"] + P["score_head.bias"]
    total = ce + (I["dlogprob"] * lp_t * I["sel"]).sum() + (I["dentropy"] * ent * I["sel"]).sum() \
        + (I["dscore"] * score).sum()
    return dict(logits=logits, ce=ce, logprob=lp_t * I["sel"], entropy=ent * I["sel"],
                score=score, total=total)


def adamw_steps(W, cfg, I, opt, steps):
    names = [n for n, _, _ in tm.tensor_shapes(cfg)]
    decay = {n: d for n, _, d in tm.tensor_shapes(cfg)}
    P = {n: W[n].double().clone().requires_grad_(True) for n in names}
    groups = [dict(params=[P[n] for n in names if decay[n]], weight_decay=opt["weight_decay"]),
              dict(params=[P[n] for n in names if not decay[n]], weight_decay=0.0)]
    o = torch.optim.AdamW(groups, lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]),
                          eps=opt["eps"])
    norms = []
    for s in range(steps):
        lr = tm.lr_at(opt, s)
        for g in o.param_groups:
            g["lr"] = lr
        o.zero_grad()
        losses(P, cfg, I)["total"].backward()
        n = torch.nn.utils.clip_grad_norm_(list(P.values()), opt["grad_clip"])
        norms.append(float(n))
        o.step()
    return {n: P[n].detach() for n in names}, norms


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    with h5py.File(out + ".tmp", "w") as f:
        for ci, (cname, cfg) in enumerate(CONFIGS.items()):
            gen = torch.Generator().manual_seed(1234 + ci)
            W = make_weights(cfg, gen)
            I = make_inputs(cfg, gen)
            g = f.create_group(cname)
            for k, v in cfg.items():
                g.attrs[k] = v
            for n, w in W.items():
                g["weights/" + n] = w.numpy()
            for k, v in I.items():
                g["inputs/" + k] = v.numpy().astype(np.int32 if v.dtype == torch.int64 else np.float32)

            names = list(W.keys())
            P = {n: W[n].double().clone().requires_grad_(True) for n in names}
            L = losses(P, cfg, I)
            for k in ("logits", "logprob", "entropy", "score"):
                g["outputs/" + k] = L[k].detach().numpy()
            g["outputs/ce"] = float(L["ce"])
            g["outputs/total"] = float(L["total"])
            gce = torch.autograd.grad(L["ce"], [P[n] for n in names], retain_graph=True,
                                      allow_unused=True)
            gtot = torch.autograd.grad(L["total"], [P[n] for n in names], allow_unused=True)
            for n, a, b in zip(names, gce, gtot):
                g["grad_ce/" + n] = (a if a is not None else torch.zeros_like(P[n])).numpy()
                g["grad/" + n] = b.numpy()
            gnorm = float(torch.sqrt(sum((b ** 2).sum() for b in gtot)))

            opt = dict(OPT, grad_clip=0.5 * gnorm)  # clipping is active on the first step
            og = g.create_group("optim")
            for k, v in opt.items():
                og.attrs[k] = v
            after, norms = adamw_steps(W, cfg, I, opt, 3)
            for n, w in after.items():
                g["after3/" + n] = w.numpy()
            g["optim"].attrs["grad_norms"] = np.array(norms)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
