"""`cai eval`: prompt sets (prompts.py), the run (run.py), the summary statistics (stats.py)."""
