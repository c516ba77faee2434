"""Our TopK SAE trainer vs SAELens on the same cached activations, matched settings
(width, k, batch, learning rate, Adam, auxiliary loss, same initial weights, same
token order), equal token budget. Runs in the benchmark's own venv (.venv-sae), which
has `sae-lens` installed; prints one JSON object.

    .venv-sae/bin/python -m bench.sae_compare --activations data/sae/<job>/activations.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from domain.sae.config import SaeConfig, TrainParams
from domain.sae.metrics import activation_metrics
from domain.sae.results import Progress
from domain.sae.sae import fast_select_dtype
from domain.sae.trainer import Trainer


def saelens_train(trainer: Trainer, data: torch.Tensor, lr: float, k: int) -> tuple[object, float]:
    from sae_lens import SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    ours = trainer.sae
    cfg = TopKTrainingSAEConfig(d_in=ours.d_in, d_sae=ours.d_sae, k=k, aux_loss_coefficient=trainer.config.aux_k_coeff,
                                rescale_acts_by_decoder_norm=False, decoder_init_norm=1.0)
    sae = TopKTrainingSAE(cfg)
    with torch.no_grad():  # the same initial weights as ours
        sae.W_dec.copy_(ours.W_dec)
        sae.W_enc.copy_(ours.W_enc_t.t())
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    batch = trainer.config.train_batch_tokens

    def provider():
        for start in range(0, len(data) - batch + 1, batch):
            yield data[start:start + batch]

    tcfg = SAETrainerConfig(total_training_samples=(len(data) // batch) * batch, train_batch_size_samples=batch,
                            lr=lr, lr_end=lr, dead_feature_window=trainer.config.dead_steps_for_aux, device="cpu")
    start = time.perf_counter()
    SAETrainer(cfg=tcfg, sae=sae, data_provider=provider()).fit()
    return sae, time.perf_counter() - start


@torch.no_grad()
def fvu(recon_fn, x: torch.Tensor) -> float:
    err = total = 0.0
    mean = x.mean(0)
    for start in range(0, len(x), 4096):
        xb = x[start:start + 4096]
        err += float((xb - recon_fn(xb)).pow(2).sum())
        total += float((xb - mean).pow(2).sum())
    return err / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--activations", required=True)
    ap.add_argument("--tokens", type=int, default=300_000)
    ap.add_argument("--expansion", type=int, default=16)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--epochs", type=int, default=1, help="passes over the tokens (same order for both)")
    ap.add_argument("--unclipped", action="store_true", help="also train without gradient clipping")
    args = ap.parse_args()
    cached = torch.load(args.activations, weights_only=True)
    train, held = cached["train"], cached["eval"]
    d_in = train.shape[1]
    params = TrainParams("cmp", "cmp", expansion_factor=args.expansion, k=args.k, max_epochs=args.epochs,
                         learning_rate=args.lr, min_loss=0)
    config = SaeConfig(checkpoint_interval_s=1e9, lr_decay_share=0.0)  # SAELens runs at a constant lr here
    batch = config.train_batch_tokens
    first = train[: min(args.tokens, len(train)) // batch * batch]  # whole batches: both see the same ones
    rows = {}
    runs = [("llmserve", None, config)]
    if fast_select_dtype() != torch.float32:  # otherwise the default already selects in fp32
        runs.append(("llmserve_fp32_select", torch.float32, config))
    if args.unclipped:  # the trainer as it was before gradient clipping, for the cause of the gap
        runs.append(("llmserve_unclipped", None, dataclasses.replace(config, max_grad_norm=0.0)))
    for name, select, run_config in runs:
        trainer = Trainer(params, run_config, first, Progress(), Path("/tmp/sae-compare-ck"))
        if select is not None:
            trainer.sae.select_dtype = select
        if name == "llmserve":  # SAELens gets the same init, normalisation and token order as ours
            norm_data = torch.cat([trainer.norm(first[torch.randperm(len(first), generator=trainer._gen(epoch))])
                                   for epoch in range(1, args.epochs + 1)])
            lens, lens_s = saelens_train(trainer, norm_data, args.lr, args.k)
            x_eval = trainer.norm(held)
            rows["saelens"] = {"seconds": lens_s, "tokens": len(norm_data),
                               "fvu": fvu(lambda xb: lens.decode(lens.encode(xb)), x_eval)}
        start = time.perf_counter()
        for _ in trainer.job():
            pass
        seconds = time.perf_counter() - start
        m = activation_metrics(trainer.sae, trainer.norm, held, config.dense_threshold)
        rows[name] = {"seconds": seconds, "tokens": trainer.progress.tokens, "fvu": m.fvu}
    for row in rows.values():
        row["tokens_per_second"] = row["tokens"] / row["seconds"]
    import sae_lens

    print(json.dumps({"rows": rows, "saelens_version": sae_lens.__version__, "d_in": d_in,
                      "d_sae": args.expansion * d_in, "k": args.k, "lr": args.lr,
                      "batch": config.train_batch_tokens, "tokens": len(first) * args.epochs,
                      "epochs": args.epochs}))


if __name__ == "__main__":
    main()
