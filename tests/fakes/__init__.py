"""The tests' fakes, importable without pytest (a `cai` subprocess imports them as engine plugins, a bench as stages):
engine.py (the fake engine, `--engine fake`), eval.py (it scripted as eval's two models and judge), eval_slow.py,
runner.py, scale.py, synth.py."""
