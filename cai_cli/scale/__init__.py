"""Past one machine: the Ray executor behind `--ray` (ray_executor.py, with tallies.py) and `cai plan` (plan.py).

Nothing here is imported unless a command asks for it; Ray itself is imported only when a run starts.
"""
