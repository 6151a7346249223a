"""Bradley–Terry ratings and bootstrap intervals on synthetic games whose truth is known."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from cai_cli.stats import ELO_SCALE, Comparison, bootstrap_mean, bradley_terry, calibration, connected_sets

TRUE = {"base": 0.0, "sl": 0.5, "rl": 1.0, "best": 2.0}  # log-odds strengths


def simulate(n_prompts: int, seed: int, soft: bool = False) -> list[Comparison]:
    rng = random.Random(seed)
    names = list(TRUE)
    games = []
    for g in range(n_prompts):
        for _ in range(2):
            a, b = rng.sample(names, 2)
            p = 1.0 / (1.0 + math.exp(-(TRUE[a] - TRUE[b])))
            outcome = p if soft else float(rng.random() < p)
            games.append(Comparison(a, b, outcome, group=f"prompt-{g}"))
    return games


def by_name(ratings):
    return {r.player: r for r in ratings}


def test_recovers_the_true_ordering_and_gaps():
    ratings = bradley_terry(simulate(600, seed=1), anchor="base", bootstrap=200)
    assert [r.player for r in ratings] == ["best", "rl", "sl", "base"]
    got = by_name(ratings)
    for name, s in TRUE.items():
        truth = 1000 + ELO_SCALE * s
        assert got[name].ci_low <= truth <= got[name].ci_high, (name, truth, got[name])


def test_soft_labels_at_their_expectation_recover_the_truth_exactly():
    # With p_a equal to the true win probability there is no noise: the fit is the truth (up to the tiny ridge).
    got = by_name(bradley_terry(simulate(300, seed=2, soft=True), anchor="base", bootstrap=0, ridge=1e-9))
    for name, s in TRUE.items():
        assert got[name].rating == pytest.approx(1000 + ELO_SCALE * s, abs=0.5)


def test_a_model_that_always_wins_is_rated_first_and_finite():
    games = [Comparison("champ", other, 1.0, group=f"{other}{i}") for other in ("a", "b") for i in range(20)]
    games += [Comparison("a", "b", float(i % 2), group=f"ab{i}") for i in range(20)]
    ratings = bradley_terry(games, bootstrap=100)
    assert ratings[0].player == "champ"
    assert ratings[0].score == 1.0
    assert math.isfinite(ratings[0].rating) and ratings[0].rating > ratings[1].rating + 300


def test_draws_give_equal_ratings_and_the_anchor_sits_at_1000():
    games = [Comparison("x", "y", 0.5, group=str(i)) for i in range(10)]
    ratings = by_name(bradley_terry(games, anchor="y", bootstrap=50))
    assert ratings["y"].rating == 1000.0
    assert ratings["x"].rating == pytest.approx(1000.0, abs=1e-6)


def test_order_of_games_and_sides_does_not_matter():
    games = simulate(100, seed=3)
    flipped = [Comparison(c.b, c.a, 1.0 - c.p_a, c.group) for c in reversed(games)]
    a = by_name(bradley_terry(games, bootstrap=0))
    b = by_name(bradley_terry(flipped, bootstrap=0))
    for name in TRUE:
        assert a[name].rating == pytest.approx(b[name].rating, abs=1e-6)


def test_more_games_narrow_the_interval():
    narrow = by_name(bradley_terry(simulate(800, seed=4), anchor="base", bootstrap=200))["best"]
    wide = by_name(bradley_terry(simulate(50, seed=4), anchor="base", bootstrap=200))["best"]
    assert narrow.ci_high - narrow.ci_low < wide.ci_high - wide.ci_low


def test_unknown_anchor_is_an_error():
    with pytest.raises(ValueError):
        bradley_terry([Comparison("a", "b", 1.0)], anchor="nobody")


def test_bootstrap_mean():
    rng = np.random.default_rng(0)
    values = (rng.random(400) < 0.3).astype(float)
    stat = bootstrap_mean(values, seed=1)
    assert stat["n"] == 400
    assert stat["value"] == pytest.approx(values.mean())
    assert stat["ci"][0] < 0.3 < stat["ci"][1]
    assert stat["ci"][1] - stat["ci"][0] < 0.12
    assert bootstrap_mean([]) is None
    assert bootstrap_mean([1.0]) == {"value": 1.0, "ci": [1.0, 1.0], "n": 1}


# --------------------------------------------------------------------------- connected sets of games


def test_players_no_game_links_are_rated_in_separate_sets_each_at_its_own_baseline():
    """Two files with no shared player: one scale would be meaningless (any shift of one set fits as well), so each
    set is fitted and anchored apart, and every rating names its set."""
    games = [Comparison("m1", "b1", 0.8, "p1"), Comparison("m1", "b1", 0.7, "p2"), Comparison("m2", "b2", 0.3, "q1"), Comparison("m2", "b2", 0.4, "q2")]
    assert connected_sets(games) == [["m1", "b1"], ["m2", "b2"]]
    got = by_name(bradley_terry(games, anchor=["b1", "b2"], bootstrap=0))
    assert {name: r.connected_set for name, r in got.items()} == {"m1": 1, "b1": 1, "m2": 2, "b2": 2}
    assert got["b1"].rating == got["b2"].rating == 1000.0  # each set's own baseline at 1000
    assert got["m1"].rating > 1000 > got["m2"].rating
    alone = by_name(bradley_terry(games[:2], anchor="b1", bootstrap=0))  # a set's ratings do not depend on the other set
    assert got["m1"].rating == pytest.approx(alone["m1"].rating)
    # A third file linking them (m1 against b2) joins the two sets into one.
    linked = bradley_terry([*games, Comparison("m1", "b2", 0.6, "r1")], anchor=["b1", "b2"], bootstrap=0)
    assert {r.connected_set for r in linked} == {1} and connected_sets([*games, Comparison("m1", "b2", 0.6)]) == [["m1", "b1", "m2", "b2"]]


# --------------------------------------------------------------------------- calibration


def test_calibration_bins_confidence_and_weights_each_gap_by_its_count():
    # Bins of 0.1 over [0.5, 1]; an edge value opens its bin (0.6 is in 0.6-0.7), 1.0 closes the last.
    conf = [0.55, 0.55, 0.6, 0.65, 0.85, 0.95, 1.0, 1.0]
    right = [True, False, False, False, True, True, True, False]
    cal = calibration(conf, right)
    assert [b["n"] for b in cal["bins"]] == [2, 2, 0, 1, 3]
    first, second, _, fourth, last = cal["bins"]
    assert first == {"range": [0.5, 0.6], "n": 2, "confidence": 0.55, "observed": 0.5, "ci": [0.0945, 0.9055], "k": 1}
    assert second["observed"] == 0.0 and second["confidence"] == pytest.approx(0.625)
    assert last["k"] == 2 and last["confidence"] == pytest.approx(0.9833, abs=1e-4)
    # ECE = (2·|0.5−0.55| + 2·|0−0.625| + 1·|1−0.85| + 3·|2/3−0.98333|) / 8
    assert cal["ece"] == pytest.approx((2 * 0.05 + 2 * 0.625 + 0.15 + 3 * abs(2 / 3 - 0.98333333)) / 8, abs=1e-4)
    assert cal["n"] == 8 and calibration([], []) is None


def test_a_calibrated_judge_has_a_small_ece_and_an_overconfident_one_a_large_one():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 4000)
    calibrated = calibration(conf, rng.random(4000) < conf)
    overconfident = calibration(conf, rng.random(4000) < 0.6)  # always about 60% right, whatever it says
    assert calibrated["ece"] < 0.03
    assert overconfident["ece"] == pytest.approx(abs(0.75 - 0.6), abs=0.03)
    for b in calibrated["bins"]:
        assert b["ci"][0] <= b["confidence"] <= b["ci"][1] or abs(b["observed"] - b["confidence"]) < 0.05
