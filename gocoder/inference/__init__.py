"""Generation: the token-level engine over KV caches, the refinement loop and tree search over
candidates, incremental parsing while sampling, and patches. Imports nothing from training or
collect (tests/test_imports.py)."""
