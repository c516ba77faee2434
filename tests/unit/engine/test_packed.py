"""oneDNN-packed linears: same results as torch's linear, a row's bits independent of
its batch, gradients through the plain path, and the model's parameters untouched."""

from __future__ import annotations

import pytest
import torch
from engine_testlib import make_gpt2, make_llama
from torch import nn
from transformers.pytorch_utils import Conv1D

from models.engine.config import EngineConfig
from models.engine.engine import Engine
from models.engine.packed import PackedLinear, format_supported, onednn_available, pack_linears, packing_supported

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch build has no oneDNN linear ops")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_linear_matches_torch_linear(dtype):
    torch.manual_seed(0)
    layer = nn.Linear(48, 80).to(dtype)
    if not packing_supported(dtype):
        # This CPU cannot pack the dtype: the model keeps torch's own layer.
        model = nn.Sequential(layer)
        assert pack_linears(model) == 0 and type(model[0]) is nn.Linear
        return
    packed = PackedLinear(layer.weight, layer.bias)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for shape in [(1, 48), (7, 48), (3, 5, 48)]:
        x = torch.randn(shape, dtype=dtype)
        with torch.inference_mode():
            torch.testing.assert_close(packed(x), layer(x), atol=tol, rtol=tol)
    assert packed.in_features == 48 and packed.out_features == 80


def test_conv1d_is_packed_with_its_weight_kept_as_is():
    torch.manual_seed(0)
    conv = Conv1D(80, 48)  # GPT-2's layer: weight [in, out]
    nn.init.normal_(conv.bias)
    model = nn.Sequential(conv)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 48)
    expected = conv(x)
    assert pack_linears(model) == 1
    assert isinstance(model[0], PackedLinear)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_a_row_gets_the_same_bits_alone_and_in_a_batch():
    torch.manual_seed(1)
    layer = nn.Linear(64, 96)
    packed = PackedLinear(layer.weight, layer.bias)
    batch = torch.randn(33, 64)
    with torch.inference_mode():
        together = packed(batch)
        for i in (0, 5, 32):
            assert torch.equal(packed(batch[i:i + 1])[0], together[i])


def test_gradients_take_the_plain_path():
    torch.manual_seed(2)
    layer = nn.Linear(16, 24)
    layer.weight.requires_grad_(False)
    packed = PackedLinear(layer.weight, layer.bias)
    x1 = torch.randn(5, 16, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    packed(x1).square().sum().backward()
    layer(x2).square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)


@pytest.mark.parametrize("make", [make_llama, make_gpt2], ids=["llama", "gpt2"])
def test_pack_linears_keeps_the_model_and_its_logits(tokenizer, make):
    model = make(len(tokenizer)).eval()
    ids = torch.tensor([[5, 9, 13, 2, 7, 11]])
    names = {n for n, m in model.named_modules() if type(m) in (nn.Linear, Conv1D)}
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    with torch.inference_mode():
        expected = model(ids).logits
    assert pack_linears(model) == len(names)
    assert pack_linears(model) == 0  # already packed
    assert all(isinstance(model.get_submodule(n), PackedLinear) for n in names)
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes
    with torch.inference_mode():
        torch.testing.assert_close(model(ids).logits, expected, atol=1e-4, rtol=1e-4)


def test_engine_packs_on_cpu_unless_told_not_to(tokenizer):
    kept = Engine(make_llama(len(tokenizer)), tokenizer, EngineConfig(cpu_linear="torch"), device="cpu")
    packed = Engine(make_llama(len(tokenizer)), tokenizer, EngineConfig(), device="cpu")
    assert not any(isinstance(m, PackedLinear) for m in kept.model.modules())
    assert any(isinstance(m, PackedLinear) for m in packed.model.modules())
    with pytest.raises(ValueError, match="cpu_linear"):
        EngineConfig(cpu_linear="mkl")


@pytest.mark.skipif(not format_supported("int8"), reason="covered by the refusal test below")
@pytest.mark.parametrize("transposed", [False, True])
def test_int8_paths_compute_the_same_weight_only_product(transposed):
    from models.engine.packed import RowDispatch, quantize_per_channel

    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    weight = nn.Parameter(linear.weight.detach().t().contiguous()) if transposed else linear.weight
    dispatch = RowDispatch.always(True)
    layer = PackedLinear(weight, linear.bias, transposed=transposed, dispatch=dispatch, int8=True)
    layer.keep(packed=True, plain=True)
    q, scales = quantize_per_channel(linear.weight.detach())
    assert q.dtype == torch.int8 and q.abs().max() == 127
    x = torch.randn(2, 5, 64)
    # The reference: bf16 activations times the int8 weights, summed in fp32, scaled per
    # channel and rounded to bf16.
    sums = x.bfloat16().float() @ q.float().t()
    expected = (sums * scales.float()).bfloat16().float() + linear.bias.detach()
    with torch.inference_mode():
        by_onednn = layer(x)
        dispatch.set((), False)
        by_int8pack = layer(x)
    assert by_onednn.shape == by_int8pack.shape == (2, 5, 48) and by_onednn.dtype == torch.float32
    for got in (by_onednn, by_int8pack):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-2)
    # Against the unquantized layer the difference is the quantization's, not zero.
    assert not torch.equal(by_int8pack, linear(x).detach())


@pytest.mark.parametrize("fmt", ["bf16", "int8"])
def test_low_precision_formats_change_the_products_only(fmt, tokenizer):
    model = make_llama(len(tokenizer)).eval()
    ids = torch.tensor([[5, 9, 13, 2, 7, 11]])
    with torch.inference_mode():
        expected = model(ids).logits
    if not format_supported(fmt):
        with pytest.raises(ValueError, match=f"weight_format='{fmt}' needs"):
            Engine(model, tokenizer, EngineConfig(weight_format=fmt), device="cpu")
        return
    engine = Engine(model, tokenizer, EngineConfig(weight_format=fmt), device="cpu")
    layers = [m for m in engine.model.modules() if isinstance(m, PackedLinear)]
    assert layers and all(m.compute_dtype == torch.bfloat16 and m.int8 == (fmt == "int8") for m in layers)
    assert all(m.weight.dtype == torch.float32 for m in layers)  # the originals are kept
    with torch.inference_mode():
        logits = engine.model(ids).logits
    assert logits.dtype == torch.float32  # activations stay fp32
    assert not torch.equal(logits, expected)  # the products really ran in low precision
    # Rounding every weight (int8) or operand (bf16) of a random model moves its logits by a few per cent.
    assert (logits - expected).norm() / expected.norm() < 0.05
    # Training through the layers (specialist adapters) runs on the original weights.
    x = torch.randn(3, layers[0].in_features, requires_grad=True)
    torch.testing.assert_close(layers[0](x), nn.functional.linear(x, layers[0].weight, layers[0].bias))
