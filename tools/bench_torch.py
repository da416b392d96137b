"""The training step of `rlaif bench train` in PyTorch: same model (tests/ref/torch_model.py),
same batch shape, cross-entropy over every token, AdamW with weight decay and gradient
clipping, float32, on the given number of threads. Prints key: value lines like the C bench,
tokens/s last (best step; the median is printed too).

usage: bench_torch.py --dim C --layers L --heads NH --kv-heads NKV --ffn FF --vocab V --seq T
                      --batch B --seconds S [--threads N]
Run it with OPENBLAS_CORETYPE set as rlaif uses it (tools/bench.sh does): PyTorch from Debian
calls BLAS through libblas.so.3, which is the same OpenBLAS, and would otherwise get its
misdetected slow kernels."""
import argparse
import ctypes
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import torch_model as tm  # noqa: E402


def blas_info():
    cfg = torch.__config__.show()
    blas = [w for w in cfg.replace(",", " ").split() if w.startswith("BLAS_INFO=")]
    core = "?"
    try:  # the OpenBLAS that libblas.so.3 resolves to is already loaded; ask it
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
    except OSError:
        pass
    return "%s via libblas.so.3 (OpenBLAS core %s)" % (blas[0] if blas else "?", core)


def main():
    ap = argparse.ArgumentParser()
    for k in ("dim", "layers", "heads", "kv-heads", "ffn", "vocab", "seq", "batch"):
        ap.add_argument("--" + k, type=int, required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = dict(dim=a.dim, n_layers=a.layers, n_heads=a.heads, n_kv_heads=a.kv_heads,
               head_dim=a.dim // a.heads, ffn_dim=a.ffn, vocab_size=a.vocab, max_seq=a.seq,
               rope_theta=10000.0, rope_neox=0, norm_eps=1e-5, qkv_bias=0, tied_output=0,
               scalar_head=0)
    P, decay, nodecay = {}, [], []
    for name, shape, dec in tm.tensor_shapes(cfg):
        w = torch.ones(shape) if name.endswith("norm.weight") else torch.randn(shape) * 0.02
        P[name] = torch.nn.Parameter(w)
        (decay if dec else nodecay).append(P[name])
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.1),
                             dict(params=nodecay, weight_decay=0.0)], lr=1e-3)
    B, T = a.batch, a.seq
    tok = torch.randint(0, a.vocab, (B, T + 1))
    x, y = tok[:, :-1].contiguous(), tok[:, 1:].contiguous()
    times, losses = [], []
    t_start = None
    while True:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        h = tm.forward_hidden(P, cfg, x)
        logits = h @ tm.output_matrix(P, cfg).t()
        loss = F.cross_entropy(logits.view(B * T, -1), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(float(loss))
        if t_start is None:  # warm-up step
            t_start = time.perf_counter()
            continue
        times.append(dt)
        if time.perf_counter() - t_start >= a.seconds and len(times) >= 2:
            break
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("torch: %s" % torch.__version__)
    print("blas: %s" % blas_info())
    print("threads: %d" % torch.get_num_threads())
    print("steps: %d in %.1f s" % (len(times), sum(times)))
    print("loss: %.4f -> %.4f" % (losses[0], losses[-1]))
    print("step_seconds_median: %.4f" % statistics.median(times))
    print("step_seconds_best: %.4f" % min(times))
    print("peak_rss_MiB: %.1f" % rss)
    print("tokens/s_median: %.0f" % (B * T / statistics.median(times)))
    print("tokens/s: %.0f" % (B * T / min(times)))


if __name__ == "__main__":
    main()
