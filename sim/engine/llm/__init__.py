"""LLM serving: a `kind: llm` stage whose replicas run iterations of prefill and decode, costed by a
measured LLM profile (models/*.yaml with `kind: llm`, made by calibrate/llm_perf.py).

What is modelled, and how:
- A request has prompt and output token counts (`workload.tokens`: distributions or trace columns).
  Its prefill emits the first token (TTFT = queue wait + the prefill iteration(s)); each later token
  takes one decode step. Alone on a replica: e2e = prefill + (n − 1) decode steps.
- Iteration costs (sim/spec/llm_cost.py): prefill from the tokens computed and Σ(new × context) attention
  pairs; a decode step from the batch size and the KV tokens read. Without a KV cache, each decode step
  recomputes every sequence's whole context. A chunked iteration mixing both costs the slower of the two.
- Policies (sim/engine/llm/static.py, continuous.py): FasterTransformer-style static batches that run to their
  longest request; vLLM-style continuous batching with `max_num_seqs`, a token budget, paged KV blocks
  (admission only when the prompt's blocks fit, recompute preemption of the newest sequences when a
  decode step lacks blocks), optional chunked prefill. Requests whose KV cache could never fit a replica,
  or longer than `max_model_len`, are rejected.
- Prefix cache: a token hit rate or a shared-prefix length removes prompt tokens from the prefill.
- One SimPy process per replica, one event per iteration (runs of decode steps in which nothing can
  change share one event and one record); replicas under a fixed routing walked one by one without SimPy,
  to the same log (replica_walk.py); the request log, the iteration log and the inter-token gaps are the record;
  sim/metrics/llm.py derives TTFT / TPOT / ITL / e2e percentiles, tokens/s, goodput, KV use from them.

Assumptions to know: costs are deterministic per iteration (the measured repeats spread by a few %);
tensor-parallel GPUs of a replica are one unit; a static batch streams tokens but holds its slots until
its longest request ends; KV blocks of a shared prefix are counted per sequence (conservative).
"""
