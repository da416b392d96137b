"""Writes the PyTorch reference that tests/unit/test_ppo.c checks include/ppo.h against.

Everything is computed in float64 from float32 inputs, written independently of the C code:
GAE as the usual vectorised backward scan over the padded (B, R) batch with values and rewards
zeroed off the mask; gradients of the policy, value and KL losses by autograd.

usage: gen_ppo_ref.py OUT.h5"""
import sys

import h5py
import numpy as np
import torch

B, R = 6, 9
LENGTHS = [9, 4, 1, 7, 0, 5]  # row 4 has no tokens at all


def f32(x):
    return torch.tensor(np.asarray(x, dtype=np.float32), dtype=torch.float64)


def main(out):
    rs = np.random.RandomState(7)
    mask = np.zeros((B, R), np.float32)
    for b, n in enumerate(LENGTHS):
        mask[b, :n] = 1
    logp = -rs.exponential(1.5, (B, R)).astype(np.float32)
    logp_ref = (logp + rs.normal(0, 0.4, (B, R))).astype(np.float32)
    logp_old = (logp + rs.normal(0, 0.25, (B, R))).astype(np.float32)
    score = rs.normal(0, 1, B).astype(np.float32)
    values = rs.normal(0, 0.7, (B, R)).astype(np.float32)
    v_old = (values + rs.normal(0, 0.3, (B, R))).astype(np.float32)
    adv_in = rs.normal(0, 1, (B, R)).astype(np.float32)
    ret_in = rs.normal(0, 1, (B, R)).astype(np.float32)
    entropy = rs.uniform(0, 3, (B, R)).astype(np.float32)
    beta, scale = 0.07, 1.0 / 23.0
    M = f32(mask)

    with h5py.File(out, "w") as f:
        for name, arr in dict(mask=mask, logp=logp, logp_ref=logp_ref, logp_old=logp_old,
                              score=score, values=values, v_old=v_old, adv_in=adv_in,
                              ret_in=ret_in, entropy=entropy).items():
            f["in/" + name] = arr.astype(np.float64)
        f.attrs["B"], f.attrs["R"], f.attrs["beta"], f.attrs["scale"] = B, R, beta, scale

        # KL estimators and per-token rewards
        d = f32(logp) - f32(logp_ref)
        ests = {"k1": d, "k2": 0.5 * d * d, "k3": torch.exp(-d) - 1 + d}
        for k, est in ests.items():
            rew = -beta * est * M
            for b, n in enumerate(LENGTHS):
                if n:
                    rew[b, n - 1] += float(score[b])
            f["kl/" + k] = (est * M).numpy()
            f["rewards/" + k] = rew.numpy()

        # GAE for two (gamma, lambda) settings, on the k1 rewards
        for tag, gamma, lam in (("g099_l095", 0.99, 0.95), ("g1_l1", 1.0, 1.0)):
            rew = torch.tensor(f["rewards/k1"][()]) * M
            val = f32(values) * M
            adv = torch.zeros(B, R, dtype=torch.float64)
            last = torch.zeros(B, dtype=torch.float64)
            for t in reversed(range(R)):
                nextv = val[:, t + 1] if t + 1 < R else torch.zeros(B, dtype=torch.float64)
                delta = rew[:, t] + gamma * nextv - val[:, t]
                last = delta + gamma * lam * last
                adv[:, t] = last
            f["gae/%s/adv" % tag] = (adv * M).numpy()
            f["gae/%s/ret" % tag] = ((adv + val) * M).numpy()
            f["gae/%s" % tag].attrs["gamma"] = gamma
            f["gae/%s" % tag].attrs["lambda"] = lam

        # whitening (torch.var is unbiased, as the C side)
        x = f32(adv_in)
        sel = x[M > 0]
        mean, var = sel.mean(), sel.var()
        w = (x - mean) * torch.rsqrt(var + 1e-8)
        f["whiten/shift"] = (w * M).numpy()
        f["whiten/noshift"] = ((w + mean) * M).numpy()

        # clipped policy loss and its gradient
        for tag, clip in (("clip02", 0.2), ("noclip", 0.0)):
            lp = f32(logp).requires_grad_(True)
            ratio = torch.exp(lp - f32(logp_old))
            A = f32(adv_in)
            l1 = -A * ratio
            if clip > 0:
                l2 = -A * torch.clamp(ratio, 1 - clip, 1 + clip)
                per = torch.maximum(l1, l2)
                clipped = ((l2 > l1).double() * M).sum().item()
            else:
                per = l1
                clipped = 0.0
            loss = (per * M).sum() * scale
            loss.backward()
            g = f.require_group("policy/" + tag)
            g["loss"] = loss.item()
            g["grad"] = lp.grad.numpy()
            g["clipped"] = clipped
            g["approx_kl"] = (0.5 * (f32(logp) - f32(logp_old)) ** 2 * M).sum().item()

        # clipped value loss and its gradient
        for tag, clip in (("clip02", 0.2), ("noclip", 0.0)):
            v = f32(values).requires_grad_(True)
            G = f32(ret_in)
            e1 = (v - G) ** 2
            if clip > 0:
                vc = f32(v_old) + torch.clamp(v - f32(v_old), -clip, clip)
                e2 = (vc - G) ** 2
                per = 0.5 * torch.maximum(e1, e2)
                clipped = ((e2 > e1).double() * M).sum().item()
            else:
                per = 0.5 * e1
                clipped = 0.0
            loss = (per * M).sum() * scale
            loss.backward()
            g = f.require_group("value/" + tag)
            g["loss"] = loss.item()
            g["grad"] = v.grad.numpy()
            g["clipped"] = clipped

        # KL as a loss term, each estimator
        for k in ("k1", "k2", "k3"):
            lp = f32(logp).requires_grad_(True)
            dd = lp - f32(logp_ref)
            est = {"k1": dd, "k2": 0.5 * dd * dd, "k3": torch.exp(-dd) - 1 + dd}[k]
            coef = 0.3
            loss = coef * scale * (est * M).sum()
            loss.backward()
            f["klloss/%s/loss" % k] = loss.item()
            f["klloss/%s/grad" % k] = lp.grad.numpy()

        # explained variance over the mask (population variances)
        vv, gg = f32(values)[M > 0], f32(ret_in)[M > 0]
        f["explained_variance"] = (1 - torch.var(gg - vv, unbiased=False) /
                                   torch.var(gg, unbiased=False)).item()


if __name__ == "__main__":
    main(sys.argv[1])
