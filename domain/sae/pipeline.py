"""One SAE job from start to artifacts: extract (or reuse cached) activations,
train (resuming from a checkpoint when there is one), evaluate, write artifacts,
and return the result document stored on the job."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from domain.artifacts import ArtifactStore, upload_file
from domain.jobs import JobRecord
from domain.sae.checkpoints import CheckpointSync
from domain.sae.activations import ActivationCache, Stopwatch, extract_job, pack_corpus
from domain.sae.config import Architecture, SaeConfig, TrainParams
from domain.sae.corpus import UploadedCorpora
from domain.sae.hardware import shape_of
from domain.sae.metrics import activation_metrics, ce_loss_job
from domain.sae.model_facts import resolve_model
from domain.sae.results import (
    Artifacts,
    FeatureStatistics,
    ModelInfo,
    Progress,
    SaeMetrics,
    SaeResult,
    TrainingStats,
)
from domain.sae.trainer import Trainer, TrainSummary
from models.manager import ModelManager, ModelRuntime

EXTRACT_SHARE = 0.1  # share of the progress bar given to activation extraction
EVAL_SHARE = 0.05


RESULT_FILES = ("sae_weights.safetensors", "sae.pt", "cfg.json", "feature_stats.safetensors", "metadata.json")


def job_prefix(job_id: str) -> str:
    """Where a job's files live in the artifact store (its checkpoints under `checkpoints/`)."""
    return f"sae/jobs/{job_id}/"


class Pipeline:
    def __init__(self, manager: ModelManager, corpora: UploadedCorpora, store: ArtifactStore, config: SaeConfig,
                 artifacts_dir: Path, record: JobRecord, progress: Progress) -> None:
        self.manager, self.corpora, self.store, self.config = manager, corpora, store, config
        self.record, self.progress = record, progress
        self.params = TrainParams.from_json(record.params)
        self.dir = artifacts_dir / record.job_id
        """Local scratch of the replica running the job: the activation cache (re-extracted
        by another replica that resumes the job) and the files before they are stored."""
        self.shared_cache = artifacts_dir / "activation_cache"
        """Activations by what produced them (model, layer, corpus bytes, packing): a later job
        on the same inputs on this replica links them instead of extracting again."""
        self.trainer: Trainer | None = None

    def message(self) -> str:
        p, total = self.progress, self.params.max_epochs
        return {"queued": "Queued", "extracting": "Extracting activations",
                "training": f"Training in progress - Epoch {p.epoch}/{total}",
                "evaluating": "Evaluating the trained SAE",
                "done": f"Training completed - {p.epoch} epochs"}.get(p.phase, p.phase)

    async def run(self) -> SaeResult:
        runtime = await self.manager.runtime(resolve_model(self.manager.registry, self.params.model_name).name)
        engine, config = runtime.engine, self.config
        self.dir.mkdir(parents=True, exist_ok=True)
        self.progress.model_info = self._model_info(runtime)
        cache, extract_s = await self._activations(runtime)
        prefix = job_prefix(self.record.job_id)
        sync = CheckpointSync(self.store, self.record.tenant, prefix + "checkpoints/", self.dir / "checkpoints",
                              self.progress)
        resume = await asyncio.to_thread(sync.newest)
        trainer = self.trainer = Trainer(self.params, config, cache.train, self.progress, self.dir / "checkpoints",
                                         resume, span=(EXTRACT_SHARE, 1 - EXTRACT_SHARE - EVAL_SHARE),
                                         on_checkpoint=sync.saved)
        summary: TrainSummary = await engine.run_background(trainer.job())
        await sync.flush()
        self.progress.phase = "evaluating"
        metrics = activation_metrics(trainer.sae, trainer.norm, cache.eval, config.dense_threshold)
        ce = await engine.run_background(ce_loss_job(engine, self.params.layer_number, trainer.sae, trainer.norm,
                                                     cache.eval_sequences[: config.ce_eval_sequences]))
        dead, window = trainer.dead_fraction()
        artifacts = self._write(trainer, metrics)
        await asyncio.to_thread(self._store_results, prefix)
        self.progress.phase, self.progress.fraction = "done", 1.0
        d_sae = trainer.sae.d_sae
        return SaeResult(
            model_path=str(self.dir / "sae.pt"), activations_path=str(self.dir / "activations.pt"),
            metadata_path=str(self.dir / "metadata.json"), feature_count=d_sae,
            checkpoints=tuple(trainer.checkpoints), artifacts=artifacts, model_info=self.progress.model_info,
            training_stats=TrainingStats(
                final_loss=summary.final_loss, total_epochs=summary.epochs,
                training_time_seconds=summary.seconds, convergence_epoch=summary.convergence_epoch,
                tokens_trained=summary.tokens, extraction_seconds=extract_s,
                tokens_per_second=summary.tokens / max(summary.seconds, 1e-9),
                resumed_from_epoch=trainer.resumed_from_epoch,
                feature_statistics=FeatureStatistics(
                    total_features=d_sae, active_features=int((metrics.fire_frequency > 0).sum()),
                    dead_features=int((metrics.fire_frequency == 0).sum()),
                    mean_activation=metrics.mean_activation_all, sparsity_achieved=metrics.l0 / d_sae)),
            metrics=SaeMetrics(
                fvu=metrics.fvu, l0=metrics.l0, dead_fraction=dead, dead_window_tokens=window,
                dense_fraction=metrics.dense_fraction, dense_threshold=config.dense_threshold,
                mean_activation=metrics.mean_activation, ce_loss_score=ce.score, ce_loss_clean=ce.clean,
                ce_loss_sae=ce.sae, ce_loss_zero=ce.zero, eval_tokens=metrics.eval_tokens,
                loss_curve=tuple(summary.curve)))

    async def _activations(self, runtime) -> tuple[ActivationCache, float]:
        """Cached activations of this job, extracted on the first run only."""
        path, meta_path = self.dir / "activations.pt", self.dir / "metadata.json"
        shared = self.shared_cache / await asyncio.to_thread(self._inputs_key, runtime)
        await asyncio.to_thread(_link_files, shared, self.dir)
        cache = await asyncio.to_thread(ActivationCache.load, path, meta_path)
        if cache is not None:
            self.progress.fraction = EXTRACT_SHARE
            return cache, float(cache.meta.get("extraction_seconds", 0.0))
        self.progress.phase = "extracting"
        p, config = self.params, self.config
        seqs = await asyncio.to_thread(pack_corpus, runtime.loaded.tokenizer,
                                       self.corpora.lines(self.record.tenant, p.corpus_file), p.max_sequence_length,
                                       config.max_tokens, config.eval_fraction)
        if not seqs.train:
            raise ValueError(f"corpus '{p.corpus_file}' has too little text: it gave no training sequence")
        batch = max(1, min(p.batch_size, config.extract_batch_tokens // p.max_sequence_length))
        clock = Stopwatch()
        train: list[torch.Tensor] = []
        ran = await runtime.engine.run_background(
            _counting(extract_job(runtime.engine, p.layer_number, seqs.train, batch, train), self.progress,
                      EXTRACT_SHARE / max(1, -(-len(seqs.train) // batch))))
        held: list[torch.Tensor] = []
        ran += await runtime.engine.run_background(extract_job(runtime.engine, p.layer_number, seqs.eval, batch, held))
        seconds = clock.elapsed()
        meta = {"model_name": p.model_name, "layer_number": p.layer_number, "corpus_file": p.corpus_file,
                "max_sequence_length": p.max_sequence_length, "train_sequences": len(seqs.train),
                "eval_sequences": len(seqs.eval), "train_tokens": sum(len(t) for t in train),
                "eval_tokens": sum(len(t) for t in held), "tokens_run": ran, "extraction_seconds": seconds,
                "extraction_tokens_per_second": ran / max(seconds, 1e-9), "dtype": "float16",
                "first_position_dropped": True}
        cache = ActivationCache(torch.cat(train), torch.cat(held), seqs.eval, meta)
        await asyncio.to_thread(cache.save, path, meta_path)
        await asyncio.to_thread(_link_files, self.dir, shared)
        return cache, seconds

    def _inputs_key(self, runtime: ModelRuntime) -> str:
        """Digest of everything the extracted activations depend on."""
        p, spec = self.params, runtime.loaded.spec
        digest = hashlib.sha256(json.dumps([spec.name, spec.source, spec.path, spec.dtype, p.layer_number,
                                            p.max_sequence_length, self.config.max_tokens,
                                            self.config.eval_fraction]).encode())
        for line in self.corpora.lines(self.record.tenant, p.corpus_file):
            digest.update(line.encode())
        return digest.hexdigest()[:32]

    def _write(self, trainer: Trainer, metrics) -> Artifacts:
        sae, norm = trainer.sae, trainer.norm
        weights = {"W_enc": sae.W_enc_t.detach().t().contiguous(), "b_enc": sae.b_enc.detach().clone(),
                   "W_dec": sae.W_dec.detach().clone(), "b_dec": sae.b_dec.detach().clone(),
                   "input_mean": norm.mean.clone(), "input_scale": torch.tensor(norm.scale)}
        save_file(weights, self.dir / "sae_weights.safetensors")
        torch.save(weights, self.dir / "sae.pt")
        save_file({"fire_frequency": metrics.fire_frequency.contiguous(),
                   "mean_activation": metrics.latent_mean.contiguous()}, self.dir / "feature_stats.safetensors")
        p = self.params
        cfg = {"architecture": p.architecture.value, "d_in": sae.d_in, "d_sae": sae.d_sae,
               "k": p.k if p.architecture is Architecture.TOPK else None, "layer": p.layer_number,
               "hook_name": f"model.layers.{p.layer_number}", "model_name": p.model_name,
               "normalization": "x' = (x - input_mean) * input_scale; decode then invert",
               "sparsity_coeff": p.sparsity_coeff if p.architecture is Architecture.L1 else None}
        (self.dir / "cfg.json").write_text(json.dumps(cfg, indent=2))
        return Artifacts(weights_path=str(self.dir / "sae_weights.safetensors"),
                         config_path=str(self.dir / "cfg.json"),
                         feature_stats_path=str(self.dir / "feature_stats.safetensors"))

    def _store_results(self, prefix: str) -> None:
        for name in RESULT_FILES:
            upload_file(self.store, self.record.tenant, prefix + name, self.dir / name)

    def _model_info(self, runtime: ModelRuntime) -> ModelInfo:
        shape = shape_of(runtime.loaded.model.config)
        spec = runtime.loaded.spec
        return ModelInfo(model_name=self.params.model_name, actual_model_loaded=spec.path or spec.description,
                         architecture=shape.architecture, total_layers=shape.total_layers,
                         selected_layer=self.params.layer_number, hidden_size=shape.hidden_size,
                         vocab_size=shape.vocab_size)


def _link_files(src: Path, dst: Path, names: tuple[str, ...] = ("activations.pt", "metadata.json")) -> None:
    """Hard-link (or copy) the activation files from `src` to `dst` when `src` has both and
    `dst` has neither. Cache files are only ever replaced whole, so sharing an inode is safe."""
    if not all((src / n).exists() for n in names) or any((dst / n).exists() for n in names):
        return
    dst.mkdir(parents=True, exist_ok=True)
    for name in reversed(names):  # the tensors last: a cache counts as present only with both files
        tmp = dst / (name + ".link")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src / name, tmp)
        except OSError:
            shutil.copyfile(src / name, tmp)
        os.replace(tmp, dst / name)


def _counting(job, progress: Progress, per_unit: float):
    """Pass a job's units through, advancing `progress.fraction` by `per_unit` each."""
    while True:
        try:
            next(job)
        except StopIteration as stop:
            return stop.value
        progress.fraction = min(EXTRACT_SHARE, progress.fraction + per_unit)
        yield
