"""`cai eval`: prompt sets (prompts.py), the run (run.py), its phases on the runner (phases.py) with shared engines
(engines.py), the judging phases (judge.py), the summary statistics (stats.py)."""
