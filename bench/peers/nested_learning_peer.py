# SPDX-License-Identifier: GPL-3.0-or-later
"""Training samples/s of the `nested-learning` 0.2.0 peer (PyPI) on random tokens.

Run by bench/peers/run.sh with the pinned torch's Python and the peer on PYTHONPATH. One training
step is the peer's own non-online loop (nested_learning/training.py, run_training_loop): forward,
next-token cross-entropy, backward, gradient clip at 1, AdamW step, then a no-grad second forward
with the teach signal that steps its CMS levels and memories. We call the peer's public classes
and functions; nothing of it is copied here.

Prints one JSON object per line: {"peer": "nested-learning", "variant", "dim", "batch", "length",
"samples_per_s", "step_ms", "params", "threads"}.
"""
import argparse
import json
import statistics
import time

import torch

from nested_learning.levels import LevelSpec
from nested_learning.model import HOPEModel, ModelConfig
from nested_learning.training import compute_teach_signal


def build(variant: str, dim: int, vocab: int) -> HOPEModel:
    cfg = ModelConfig(
        vocab_size=vocab,
        dim=dim,
        num_layers=2,
        heads=4,
        titan_level=LevelSpec(name="titan", update_period=4),
        cms_levels=[
            LevelSpec(name="cms_fast", update_period=1),
            LevelSpec(name="cms_mid", update_period=4),
            LevelSpec(name="cms_slow", update_period=16),
        ],
        # Hope Lab's hope: the output memory writes every 4 tokens, k/v/eta/alpha every 8.
        self_mod_chunk_size=8,
        self_mod_chunk_size_memory=4,
        block_variant=variant,
    )
    return HOPEModel(cfg)


def time_variant(variant: str, dim: int, batch: int, length: int, vocab: int, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = build(variant, dim, vocab)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, vocab, (batch, length))
    times = []
    for s in range(warmup + steps):
        t0 = time.perf_counter()
        logits = model(tokens)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1)
        )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()
        with torch.no_grad():
            model(tokens, teach_signal=compute_teach_signal(model, logits, tokens))
        if s >= warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    return {
        "peer": "nested-learning",
        "variant": variant,
        "dim": dim,
        "batch": batch,
        "length": length,
        "samples_per_s": batch / step,
        "step_ms": step * 1e3,
        "params": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["hope_selfmod", "hope_attention", "transformer"])
    ap.add_argument("--dims", nargs="+", type=int, default=[128, 256])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    for dim in a.dims:
        for v in a.variants:
            print(json.dumps(time_variant(v, dim, a.batch, a.length, a.vocab, a.steps, a.warmup)), flush=True)


if __name__ == "__main__":
    main()
