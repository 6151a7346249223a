"""What carries a stage's counts from the processes that ran its batches (Ray actors) to the summary line, and the
--ray options' one-line errors; no Ray needed."""

from __future__ import annotations

import copy

from cai_cli.judge import JudgeStats
from cai_cli.runner import StageStats
from cai_cli.scale.tallies import add_tallies, increase, snapshot

from conftest import invoke, write_jsonl


class Counting:
    tallies = ("stats", "counts", "judge_stats", "seconds")

    def __init__(self):
        self.stats = StageStats(extra={"revised": 0})
        self.counts = {"kept": 0}
        self.judge_stats = JudgeStats()
        self.seconds = 0.0

    def work(self, k: int) -> None:
        self.stats.tokens_in += 10 * k
        self.stats.truncated += 1
        self.stats.extra["revised"] += k
        self.counts["kept"] += k
        self.counts["new"] = self.counts.get("new", 0) + 1  # a key first set in a batch
        self.judge_stats.votes += 2 * k
        self.judge_stats.principles.setdefault("harm", [0, 0])
        self.judge_stats.principles["harm"][0] += k
        self.seconds += 0.5


def test_each_batchs_increase_adds_up_to_what_one_process_counts():
    one = Counting()
    for k in (1, 2, 3):
        one.work(k)

    driver, actors = Counting(), [Counting(), Counting()]
    actors[0].work(7)  # counted before the batches of this run: never sent again
    for actor, k in ((actors[0], 1), (actors[1], 2), (actors[0], 3)):
        before = snapshot(actor)
        actor.work(k)
        add_tallies(driver, copy.deepcopy(increase(actor, before)))

    assert driver.stats == one.stats and driver.counts == one.counts and driver.seconds == one.seconds
    assert driver.judge_stats == one.judge_stats


def test_ray_options_without_ray_and_ray_with_the_openai_engine_say_so(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "prompt": "hi"}])
    result = invoke("generate", str(src), "--engine", "fake", "--ray-actors", "2")
    assert result.exit_code == 2 and "--ray-actors and --ray-gpus go with --ray ADDRESS" in result.output
    result = invoke("generate", str(src), "--engine", "openai", "--base-url", "http://127.0.0.1:9", "--ray", "auto")
    assert result.exit_code == 2 and "drop --ray" in result.output
