"""Design aid for the LUT matcher: which fact (if any) fires for every prompt of one split,
without generating. Caches every prompt's and label's hidden states at all layers once
(data/lut_probe_<split>.pt, not committed), then scores matching rules offline.

Firing the right fact is what reliability and generalization need (the label is then
followed greedily); firing nothing is what locality needs (a non-firing row decodes
exactly like the base model). `make eval-lut` measures the real thing by generating.
Usage: python -m bench.lut_probe --split design"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "lut_set"


def load(split: str):
    facts = [json.loads(x) for x in (DATA / "lut_facts.jsonl").read_text().splitlines() if x.strip()]
    unrelated = [json.loads(x) for x in (DATA / "lut_unrelated.jsonl").read_text().splitlines() if x.strip()]
    updates = [json.loads(x) for x in (DATA / "lut_updates.jsonl").read_text().splitlines() if x.strip()]
    return ([f for f in facts if f["split"] == split], [u["prompt"] for u in unrelated if u["split"] == split],
            [u for u in updates if u["split"] == split])


def model():
    from models.loading import load_model
    from models.registry import default_specs
    spec = next(s for s in default_specs() if s.name == "smollm2")
    return load_model(spec, ROOT / "data" / "models")


@torch.inference_mode()
def states(loaded, texts: list[str]) -> dict[str, tuple[list[int], torch.Tensor]]:
    """text -> (ids, [layers+1, len, hidden] float16 hidden states)."""
    out = {}
    for n, t in enumerate(texts):
        if n % 100 == 0:
            print(f"hidden states {n}/{len(texts)}", flush=True)
        ids = loaded.tokenizer(t, add_special_tokens=True)["input_ids"]
        hs = loaded.model(input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False).hidden_states
        out[t] = (ids, torch.stack([h[0] for h in hs]).to(torch.float16))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="design")
    ap.add_argument("--layers", type=int, nargs="+", default=[7])
    ap.add_argument("--threshold", type=float, default=0.65)
    ap.add_argument("--min-keys", type=int, default=2)
    ap.add_argument("--max-keys", type=int, default=16)
    ap.add_argument("--novelty", type=float, default=0.3)
    ap.add_argument("--show", action="store_true", help="print every wrong decision")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--person", action="store_true", help="first-person facts fire only on first-person prompts")
    ap.add_argument("--adaptive-k", action="store_true", help="min_keys capped by the prompt's content words")
    ap.add_argument("--adaptive-personal-only", action="store_true")
    ap.add_argument("--thresholds", type=float, nargs="*", default=[])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)  # on a shared 2-core machine one thread wastes no time spinning
    facts, unrelated, updates = load(args.split)
    cache = ROOT / "data" / f"lut_probe_{args.split}.pt"
    loaded = model()
    if not cache.exists():
        from domain.lut.keys import GENERIC_TEXTS
        texts = {f["label_context"] + f["label"] for f in facts} | {u["label_context"] + u["label"] for u in updates}
        texts |= {p for f in facts for p in [f["prompt"], *f["paraphrases"], *f["neighbors"]]} | set(unrelated)
        texts |= set(GENERIC_TEXTS) | {"Assistant: "}
        torch.save(states(loaded, sorted(texts)), cache)
    cached = torch.load(cache)
    for layer in args.layers:
        for thr in args.thresholds or [args.threshold]:
            args.threshold = thr
            r = score(loaded, cached, facts, unrelated, layer, args)
            print(f"layer {layer} thr {thr}: " + " ".join(f"{k} {v:.3f}" for k, v in r.items()), flush=True)


def score(loaded, cached, facts, unrelated, layer: int, args) -> dict[str, float]:
    """Emulates LutHook's decision for every prompt with the domain's own key code."""
    from domain.lut.keys import GENERIC_TEXTS, compile_lut, content_positions
    from domain.lut.codec import EntryPayload
    from domain.lut.learn import key_positions, novel_keys
    tokenizer = loaded.tokenizer
    h = lambda t: cached[t][1][layer + 1].float()  # noqa: E731  (index 0 is the embeddings)
    mean = torch.cat([h(t)[1:] for t in GENERIC_TEXTS]).mean(dim=0)
    ctx_ids = cached["Assistant: "][0]
    entries = []
    for f in facts:
        ids = cached[f["label_context"] + f["label"]][0]
        pos = key_positions(tokenizer, ctx_ids, ids, args.max_keys)
        novel = None
        if args.novelty > 0:
            with torch.inference_mode():
                logits = loaded.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
            novel = novel_keys(tokenizer, ids, pos, logits, args.novelty)
        entries.append(EntryPayload(layer, h(f["label_context"] + f["label"])[pos], (), (), novel))
    lut = compile_lut(entries, mean, layer, args.min_keys)
    from domain.lut.keys import center

    import re
    first = lambda text: bool(re.search(r"\b(my|i|me|mine|our|we|us|ours)\b", text.lower()))  # noqa: E731
    personal = torch.tensor([first(f["label"]) for f in facts])
    from domain.lut.keys import word_groups

    def fired(prompt: str) -> int | None:
        ids = cached[prompt][0]
        rows = content_positions(tokenizer, ids)
        if not rows:
            return None
        sims = lut.keys @ center(h(prompt)[rows], mean).T
        best_key = sims.max(dim=1).values
        if args.adaptive_k and (not args.adaptive_personal_only or first(prompt[len("User: "):-len("\nAssistant:")])):
            words = sum(1 for g in word_groups(tokenizer, ids) if set(g) & set(rows))
            scores = dataclasses.replace(lut, min_keys=max(1, min(args.min_keys, words))).fact_scores(best_key)
        else:
            scores = lut.fact_scores(best_key)
        if args.person and not first(prompt[len("User: "):-len("\nAssistant:")]):
            scores = torch.where(personal, torch.full_like(scores, -1.0), scores)
        best = int(scores.argmax())
        return best if float(scores[best]) >= args.threshold else None

    if args.show:
        for i, f in enumerate(facts):
            for kind, ps, want in (("Q", [f["prompt"], *f["paraphrases"]], i), ("N", f["neighbors"], None)):
                for p in ps:
                    got = fired(p)
                    if got != want:
                        print(f"{kind} {f['label']!r:60.60} | {p[6:-11]!r:55.55} -> "
                              f"{None if got is None else facts[got]['label'][:40]}")
        for p in unrelated:
            if fired(p) is not None:
                print(f"U {p[6:-11]!r} -> {facts[fired(p)]['label'][:40]}")
    mean_of = lambda xs: statistics.mean(xs) if xs else float("nan")  # noqa: E731
    return dict(
        reliability=mean_of([fired(f["prompt"]) == i for i, f in enumerate(facts)]),
        paraphrase=mean_of([fired(p) == i for i, f in enumerate(facts) for p in f["paraphrases"]]),
        neighbour=mean_of([fired(p) is None for f in facts for p in f["neighbors"]]),
        unrelated=mean_of([fired(p) is None for p in unrelated]))


if __name__ == "__main__":
    main()
