"""The LLM engine as it was before the speed work of issue 24 (commit 016da14), kept verbatim with its
imports renamed, as a test-only oracle: tests/test_llm_speed_equivalence.py checks the current engine
against it request for request. Do not edit: it is the reference, not a second engine. (It still imports
sim's cost model, schemas and router, which that work does not change.)"""
