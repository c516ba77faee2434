"""The SAE, its metrics and its trainer on inputs with known answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from models.errors import InvalidArgument, ResourceExhausted
from domain.sae.config import Architecture, SaeConfig, TrainParams
from domain.sae.corpus import UploadedCorpora, parse_multipart
from storage import Database, sqlite_url
from storage.artifacts import ArtifactRepository
from domain.sae.metrics import CeLoss, Normalizer, activation_metrics
from domain.sae.sae import SparseAutoencoder
from domain.sae.results import Progress
from domain.sae.trainer import Trainer


def exact_sae(d: int) -> SparseAutoencoder:
    """W = [I; -I], k = d: for every dimension exactly one of +x_i, -x_i is kept, so the
    reconstruction is exact and L0 counts the non-zero input dimensions."""
    sae = SparseAutoencoder(d, 2 * d, Architecture.TOPK, k=d)
    eye = torch.cat([torch.eye(d), -torch.eye(d)])
    with torch.no_grad():
        sae.W_dec.copy_(eye)
        sae.W_enc_t.copy_(eye)
    return sae


def test_exact_sae_has_zero_fvu_and_counts_l0():
    torch.manual_seed(0)
    acts = torch.randn(500, 8)
    acts[:, :2] = 0.0  # two dimensions never active: their four latents are dead
    norm = Normalizer(torch.zeros(8), 1.0)
    m = activation_metrics(exact_sae(8), norm, acts, dense_threshold=0.1)
    assert m.fvu == pytest.approx(0.0, abs=1e-10)
    assert m.l0 == pytest.approx(6.0)
    assert int((m.fire_frequency == 0).sum()) == 4
    assert m.dense_fraction == pytest.approx(12 / 16)  # each remaining latent fires on ~half the tokens


def test_sae_that_outputs_the_mean_has_fvu_one():
    torch.manual_seed(0)
    acts = torch.randn(2000, 8) * 3 + 5
    norm = Normalizer.fit(acts)
    sae = exact_sae(8)
    with torch.no_grad():
        sae.W_dec.zero_()  # decoding anything gives b_dec = 0, the normalised mean
    m = activation_metrics(sae, norm, acts, dense_threshold=0.1)
    assert m.fvu == pytest.approx(1.0, abs=1e-3)


def test_normalizer_centres_and_scales_to_sqrt_d():
    acts = torch.randn(4000, 16) * 7 + 3
    norm = Normalizer.fit(acts)
    x = norm(acts)
    assert x.mean(0).abs().max() < 1e-4
    assert x.norm(dim=-1).mean() == pytest.approx(4.0, rel=1e-4)
    assert torch.allclose(norm.invert(x), acts, atol=1e-4)


def test_sparse_topk_matches_the_dense_computation_and_its_gradients():
    torch.manual_seed(0)
    sae = SparseAutoencoder(12, 48, Architecture.TOPK, k=5, seed=3)
    with torch.no_grad():
        sae.b_enc.normal_()
        sae.b_dec.normal_()
    x = torch.randn(32, 12)
    out = sae(x)
    loss = (out.recon - x).pow(2).sum()
    loss.backward()
    sparse_grads = [p.grad.clone() for p in sae.parameters()]

    sae.zero_grad()
    pre = (x - sae.b_dec) @ sae.W_enc_t.t() + sae.b_enc
    mask = torch.zeros_like(pre).scatter_(1, pre.topk(5, dim=-1).indices, 1.0)
    dense = F.relu(pre) * mask
    ref = dense @ sae.W_dec + sae.b_dec
    (ref - x).pow(2).sum().backward()
    assert torch.allclose(out.recon, ref, atol=1e-5)
    for got, want in zip(sparse_grads, (p.grad for p in sae.parameters())):
        assert torch.allclose(got, want, atol=1e-4)


def test_ce_loss_score():
    assert CeLoss(clean=2.0, sae=2.0, zero=6.0).score == 1.0
    assert CeLoss(clean=2.0, sae=6.0, zero=6.0).score == 0.0
    assert CeLoss(clean=2.0, sae=3.0, zero=6.0).score == pytest.approx(0.75)


def sparse_data(n: int, d: int = 16, features: int = 32, active: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    dictionary = F.normalize(torch.randn(features, d, generator=gen), dim=-1)
    codes = torch.zeros(n, features)
    idx = torch.stack([torch.randperm(features, generator=gen)[:active] for _ in range(n)])
    codes.scatter_(1, idx, torch.rand(n, active, generator=gen) + 0.5)
    return codes @ dictionary


def run(trainer: Trainer):
    job = trainer.job()
    while True:
        try:
            next(job)
        except StopIteration as stop:
            return stop.value


def make_trainer(tmp: Path, epochs: int, data: torch.Tensor, resume: Path | None = None, **config) -> Trainer:
    params = TrainParams("m", "c.txt", hidden_dim=64, k=4, max_epochs=epochs, learning_rate=3e-3, min_loss=0)
    cfg = SaeConfig(train_batch_tokens=128, checkpoint_interval_s=0.0, **config)
    return Trainer(params, cfg, data, Progress(), tmp / "ck", resume)


def test_training_learns_sparse_structure(tmp_path):
    data = sparse_data(4096)
    trainer = make_trainer(tmp_path, 8, data)
    summary = run(trainer)
    m = activation_metrics(trainer.sae, trainer.norm, sparse_data(1024), dense_threshold=0.5)
    assert m.fvu < 0.2, m.fvu
    assert summary.curve[-1].loss < summary.curve[0].loss / 3
    assert summary.epochs == 8 and trainer.progress.tokens == 8 * 4096


def test_min_loss_stops_early(tmp_path):
    trainer = make_trainer(tmp_path, 50, sparse_data(2048))
    trainer.params = TrainParams("m", "c.txt", hidden_dim=64, k=4, max_epochs=50, learning_rate=3e-3, min_loss=0.5)
    summary = run(trainer)
    assert summary.epochs < 50 and summary.final_loss < 0.5
    assert summary.convergence_epoch == summary.epochs


def test_resumed_training_equals_uninterrupted(tmp_path):
    data = sparse_data(1024)
    whole = make_trainer(tmp_path / "a", 4, data)
    run(whole)
    first = make_trainer(tmp_path / "b", 4, data)
    job = first.job()
    while not any(c.endswith("checkpoint_2.pt") for c in first.checkpoints):
        next(job)  # the job is interrupted right after its epoch-2 checkpoint
    job.close()
    resumed = make_trainer(tmp_path / "c", 4, data, resume=Path(first.checkpoints[-1]))
    assert resumed.progress.epoch == 2 and resumed.progress.tokens == 2 * 1024
    run(resumed)
    for a, b in zip(whole.sae.parameters(), resumed.sae.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert len(resumed.checkpoints) <= 2 and all(Path(c).exists() for c in resumed.checkpoints)


def test_learning_rate_decays_linearly_over_the_last_share(tmp_path):
    trainer = make_trainer(tmp_path, 10, sparse_data(1280), lr_decay_share=0.2)  # 10 steps an epoch
    total = 10 * trainer.steps_per_epoch()
    lrs = [trainer.lr_at(step, total) for step in range(total)]
    assert lrs[:80] == [3e-3] * 80
    tail = lrs[80:]
    assert all(a > b for a, b in zip(tail, tail[1:])) and 0 < tail[-1] < 3e-3 / 10
    seen = []
    job = trainer.job()
    for _ in range(total):
        next(job)
        seen.append(trainer.opt.param_groups[0]["lr"])
    assert seen == lrs  # the optimizer ran each step at the scheduled rate
    flat = make_trainer(tmp_path / "flat", 10, sparse_data(1280), lr_decay_share=0.0)
    assert {flat.lr_at(step, total) for step in range(total)} == {3e-3}


def test_dead_fraction_uses_a_token_window(tmp_path):
    trainer = make_trainer(tmp_path, 1, sparse_data(512), dead_window_tokens=256)
    run(trainer)
    trainer.since_fired[:10] = 10_000
    trainer.since_fired[10:] = 0
    fraction, window = trainer.dead_fraction()
    assert window == 256 and fraction == pytest.approx(10 / 64)


def test_params_ranges_name_the_field():
    for kwargs, field in (({"batch_size": 0}, "batch_size"), ({"batch_size": 129}, "batch_size"),
                          ({"hidden_dim": 8, "expansion_factor": 2}, "hidden_dim"), ({"min_loss": -1}, "min_loss"),
                          ({"max_sequence_length": 8}, "max_sequence_length"), ({"corpus_file": ""}, "corpus_file")):
        with pytest.raises(InvalidArgument) as err:
            TrainParams(**{"model_name": "m", "corpus_file": "c.txt", **kwargs}).validate()
        assert err.value.field == field
    with pytest.raises(InvalidArgument) as err:
        TrainParams("m", "c.txt", layer_number=30).validate_for_model(total_layers=30, hidden_size=8)
    assert err.value.field == "layer_number" and "0 and 29" in err.value.message


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


def test_corpus_upload_checks_utf8_across_chunks_and_size(tmp_path):
    store = ArtifactRepository(_sqlite(tmp_path), chunk_bytes=4)
    corpora = UploadedCorpora(store, max_bytes=64, spool_dir=tmp_path / "spool")
    euro = "€".encode()  # three bytes split over two chunks must still decode
    stored = asyncio.run(corpora.save("default", "a.txt", _chunks(b"one\n", euro[:2], euro[2:] + b"\ntwo")))
    assert (stored.size_bytes, stored.lines) == (11, 3) and stored.location == "artifact://sae/corpora/a.txt"
    assert store.get("default", "sae/corpora/a.txt").decode() == "one\n€\ntwo"
    assert list(corpora.lines("default", "a.txt")) == ["one\n", "€\n", "two"]  # stored in 4-byte chunks
    with pytest.raises(ResourceExhausted):
        asyncio.run(corpora.save("default", "a.txt", _chunks(b"x" * 65)))
    with pytest.raises(InvalidArgument):
        asyncio.run(corpora.save("default", "a.txt", _chunks(b"ok\n", b"\xff")))
    assert store.get("default", "sae/corpora/a.txt").decode() == "one\n€\ntwo"  # a failed upload replaces nothing
    assert not list((tmp_path / "spool").iterdir())  # nor leaves a spooled file
    with pytest.raises(InvalidArgument) as err:
        corpora.require("other", "a.txt")  # another tenant's corpus is a missing one
    assert err.value.field == "corpus_file"


def test_corpora_left_as_local_files_are_imported_once(tmp_path):
    legacy = tmp_path / "samples"
    (legacy / ".tenants" / "alice").mkdir(parents=True)
    (legacy / "old.txt").write_text("old text\n")
    (legacy / ".tenants" / "alice" / "hers.txt").write_text("hers\n")
    store = ArtifactRepository(_sqlite(tmp_path))
    corpora = UploadedCorpora(store, max_bytes=64, spool_dir=tmp_path / "spool", legacy_dir=legacy)
    assert corpora.import_legacy() == 2 and corpora.import_legacy() == 0
    assert list(corpora.lines("default", "old.txt")) == ["old text\n"]
    assert corpora.require("alice", "hers.txt") == 5


def _sqlite(tmp_path):
    db = Database(sqlite_url(tmp_path))
    db.migrate()
    return db


def test_multipart_body_gives_the_file_part():
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"reviews.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\nline one\nline two\n\r\n--XyZ--\r\n")
    assert parse_multipart("multipart/form-data; boundary=XyZ", body) == ("reviews.txt", b"line one\nline two\n")
    with pytest.raises(InvalidArgument) as err:
        parse_multipart("application/json", b"{}")
    assert err.value.field == "content_type"


def test_activation_files_are_linked_whole_or_not_at_all(tmp_path):
    from domain.sae.pipeline import _link_files

    src, dst = tmp_path / "job_a", tmp_path / "shared"
    src.mkdir()
    (src / "activations.pt").write_bytes(b"tensors")
    _link_files(src, dst)
    assert not dst.exists()  # metadata missing: nothing is published
    (src / "metadata.json").write_text("{}")
    _link_files(src, dst)
    assert (dst / "activations.pt").read_bytes() == b"tensors" and (dst / "metadata.json").read_text() == "{}"
    other = tmp_path / "job_c"
    other.mkdir()
    (other / "activations.pt").write_bytes(b"other")
    (other / "metadata.json").write_text("{}")
    _link_files(other, dst)  # a published cache is never replaced
    assert (dst / "activations.pt").read_bytes() == b"tensors"
    job_b = tmp_path / "job_b"
    _link_files(dst, job_b)
    assert sorted(p.name for p in job_b.iterdir()) == ["activations.pt", "metadata.json"]


def _grad_norm(sae: SparseAutoencoder) -> float:
    return float(torch.stack([p.grad.norm() for p in sae.parameters() if p.grad is not None]).norm())


def test_gradients_are_clipped_on_the_summed_error_scale(tmp_path):
    batch = sparse_data(128)
    clipped = make_trainer(tmp_path / "a", 1, batch, max_grad_norm=0.01)
    free = make_trainer(tmp_path / "b", 1, batch, max_grad_norm=0.0)
    clipped._step(batch, torch.Generator())
    free._step(batch, torch.Generator())
    d_in = batch.shape[1]
    assert _grad_norm(free.sae) > 0.01 / d_in  # the bound binds on this batch ...
    assert _grad_norm(clipped.sae) == pytest.approx(0.01 / d_in, rel=1e-4)  # ... and holds


def test_decoder_rows_stay_unit_norm_and_get_no_radial_gradient(tmp_path):
    data = sparse_data(1024)
    trainer = make_trainer(tmp_path, 1, data)
    run(trainer)
    norms = trainer.sae.W_dec.norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    before = trainer.sae.W_dec.detach().clone()
    trainer._step(data[:128], torch.Generator())  # its grads are kept until the next step
    radial = (trainer.sae.W_dec.grad * before).sum(-1)
    assert radial.abs().max() < 1e-6 * trainer.sae.W_dec.grad.norm()
