"""`cai eval`: its options (config.py), prompt sets (prompt_sets.py, suites.py), the run (run.py), its phases on the
runner (phases.py) with engines shared through engines/pool.py, the judging phases (judge.py), the last stage (rows.py),
the summary statistics (summary.py)."""
