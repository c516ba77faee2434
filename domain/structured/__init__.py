"""Structured (JSON Schema) replies: schema checks, xgrammar-compiled grammars cached per
tokenizer, and the engine `RowHook` that masks logits so the output always parses."""
