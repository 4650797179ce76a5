"""Evaluation: benchmark formats and their checks, answers, scoring in the sandbox (benchrun), the
fix benchmark (synthfix), checkpoint evaluation (evaluate) and reports."""
