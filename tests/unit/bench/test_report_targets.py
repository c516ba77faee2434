"""The one-stream targets of the bench table take the fastest weight format that passes the 2%
perplexity rule, never one that fails it."""

from bench import report


def _sections(decode_by_format: dict[str, float]) -> dict:
    return {
        "serial": {"summary": {"tok_s": 20.0, "stream_decode_tok_s_p50": 20.0}},
        "llamacpp": {"decode_tok_s_p50": 100.0},
        "grpc": {"1": {"summary": {"stream_decode_tok_s_p50": decode_by_format["fp32"]}}},
        "weights": {"default": "fp32", "formats": {
            fmt: {"1": {"stream_decode_tok_s_p50": tok_s}} for fmt, tok_s in decode_by_format.items()}},
    }


def _perplexity(deltas: dict[str, float]) -> dict:
    return {"perplexity": {"rows": [
        {"status": f"engine: weight_format {fmt}", "delta_pct": delta, "passes": abs(delta) <= 2.0}
        for fmt, delta in deltas.items()] + [{"status": "not offered", "delta_pct": 0.1, "passes": True}]}}


def _one_stream_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["target"].startswith("One stream, fastest format")]


def test_the_fastest_format_within_two_percent_carries_the_one_stream_targets():
    rows = report.targets(_sections({"fp32": 30.0, "bf16": 55.0}), _perplexity({"fp32": 0.0, "bf16": -0.04}))
    vs_hf, vs_llama = _one_stream_rows(rows)
    assert "(bf16, -0.04%)" in vs_hf["target"]
    assert vs_hf["value"] == 55.0 / 20.0 and vs_hf["met"] is True
    assert vs_llama["value"] == 0.55 and vs_llama["met"] is True


def test_a_faster_format_that_fails_the_perplexity_rule_is_not_chosen():
    rows = report.targets(_sections({"fp32": 30.0, "int8": 90.0}), _perplexity({"fp32": 0.0, "int8": 218.5}))
    vs_hf, vs_llama = _one_stream_rows(rows)
    assert "(fp32, +0.00%)" in vs_hf["target"]
    assert vs_llama["value"] == 0.3 and vs_llama["met"] is False


def test_without_a_perplexity_run_the_rows_say_what_is_missing():
    vs_hf, _ = _one_stream_rows(report.targets(_sections({"fp32": 30.0}), {}))
    assert vs_hf["met"] is None
    assert "bench/perplexity.json missing" in vs_hf["detail"]
