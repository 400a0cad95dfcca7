"""Bulkhead's load harness as a package; `load/run` is its entry point (see load/README.md).

Modules, in the order a run uses them:

- `config`: paths, fixed credentials, targets, the command line and the run's `Settings`.
- `tools`: the external tools (wrk, oha, psql), `load/run install-tools`, the build.
- `procs`: every child process registered for cleanup; the servers (Bulkhead, the floor,
  the axum baselines); the run's database.
- `client`: a small HTTP client for seeding and probes (load comes from wrk and oha).
- `seed`: users, products and minted tokens.
- `sampling`: server CPU, RSS and context switches from /proc; the server's /metrics.
- `pinning`: CPU affinity for the overload scenario, always restored.
- `generators`: wrk (closed loop) and oha (open loop) runs, parsed.
- `results`: the typed records a run produces.
- `scenarios`: one measured scenario, the registry of scenarios after the head-to-head,
  and the overload scenario.
- `runs`: the full run (head-to-head rounds, access-log A-B-A, registered scenarios) and
  the memory check.
- `targets`, `report`: the target checks and the Markdown report, a function per section.
- `cli`: `main()`.
- `invalidation_lag`: standalone (`python3 -m bulkhead_load.invalidation_lag`): the
  fleet's invalidation lag over 1,000 user changes, from two instances' histograms.
"""
