"""Walk-forward evaluation on panels with a known truth: a planted signal is recovered at its
strength, shuffled labels give no signal, the same data and seed give the same figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tickerlake import evaluation as ev
from tickerlake.calendar import sessions_between
from tickerlake.walkforward import WalkForwardConfig, score_oos, walk_forward

pytestmark = pytest.mark.unit

FEATURES = ["SIG", "NOISE1", "NOISE2", "REV1", "STD20"]
FAST = WalkForwardConfig(test_sessions=60, min_train=150, validation_sessions=30, num_rounds=60,
                         early_stopping_rounds=20,
                         params={"objective": "regression", "learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 50,
                                 "seed": 7, "deterministic": True, "force_row_wise": True, "num_threads": 1,
                                 "verbose": -1})


def panel(n_tickers: int, n_sessions: int, strength: float, seed: int) -> pd.DataFrame:
    """label = strength * SIG + noise, SIG and the noise standard normal, independent across rows."""
    rng = np.random.default_rng(seed)
    days = sessions_between("2021-01-04", "2024-12-31")[:n_sessions]
    n = n_tickers * n_sessions
    frame = pd.DataFrame({"ticker": np.tile([f"T{i:03d}" for i in range(n_tickers)], n_sessions),
                          "date": np.repeat(days, n_tickers)})
    for f in FEATURES:
        frame[f] = rng.standard_normal(n)
    frame["ret_1d"] = strength * frame["SIG"] + rng.standard_normal(n)
    return frame


def test_a_planted_signal_is_recovered_at_its_strength():
    strength = 0.2
    oos = walk_forward(panel(80, 330, strength, seed=1), FAST, features=FEATURES)
    figures = score_oos(oos, FAST)
    rho = strength / math.sqrt(1 + strength**2)
    planted = 6 / math.pi * math.asin(rho / 2)  # Spearman of a bivariate normal with correlation rho
    se = figures["rank_ic_std"] / math.sqrt(figures["sessions"])
    assert abs(figures["rank_ic_mean"] - planted) < 4 * se + 0.02, (figures["rank_ic_mean"], planted)
    assert figures["rank_ic_t"] > 5
    single = {k: v for k, v in figures["baselines"].items() if k != "linear"}
    assert set(single) == {"reversal_1d", "low_volatility"}  # the baselines whose feature the panel has
    assert all(figures["rank_ic_mean"] > b["rank_ic_mean"] + 0.03 for b in single.values())  # noise here
    # the truth is linear: the ridge baseline on the same features finds it too
    assert abs(figures["baselines"]["linear"]["rank_ic_mean"] - planted) < 4 * se + 0.02
    assert figures["top_minus_bottom"] > 0 and figures["deciles"][-1] > figures["deciles"][0]
    assert figures["sharpe_net_5bp"] > figures["sharpe_net_20bp"]
    # target 0.8, calibrated on earlier folds only; rows are exchangeable here, so it holds closely
    assert abs(figures["coverage"] - 0.8) < 0.03, figures["coverage"]


def test_coverage_counts_labels_inside_the_absolute_bounds():
    from tickerlake.walkforward import coverage

    rows = pd.DataFrame({"pred_return": [0.01, 0.01, 0.01, 0.01, 0.01],
                         "pred_lo": [0.0, 0.0, 0.0, 0.0, np.nan], "pred_hi": [0.02, 0.02, 0.02, 0.02, 0.02],
                         "label": [0.0, 0.02, 0.021, -0.5, 0.01]})
    assert coverage(rows) == pytest.approx(0.5)  # bounds inclusive; the row without an interval is left out


def test_shuffled_labels_give_no_signal():
    """20 seeded shuffles: the mean out-of-sample rank IC is within 2 standard errors of 0, and at
    most 2 of the 20 have |t| > 2."""
    means, ts = [], []
    base = panel(40, 280, 0.3, seed=2)
    for seed in range(20):
        shuffled = base.copy()
        shuffled["ret_1d"] = np.random.default_rng(100 + seed).permutation(shuffled["ret_1d"].to_numpy())
        figures = score_oos(walk_forward(shuffled, FAST, features=FEATURES), FAST)
        means.append(figures["rank_ic_mean"])
        ts.append(figures["rank_ic_t"])
    means = np.asarray(means)
    assert abs(means.mean()) < 2 * means.std(ddof=1) / math.sqrt(len(means))
    assert int((np.abs(ts) > 2).sum()) <= 2, ts


def test_out_of_sample_rows_are_never_trained_on_and_the_purge_holds():
    frame = panel(30, 330, 0.2, seed=3)
    oos = walk_forward(frame, FAST, features=FEATURES)
    blocks = ev.walk_forward_blocks(frame["date"].unique(), test_sessions=FAST.test_sessions, label_horizon=1,
                                    min_train=FAST.min_train, validation_sessions=FAST.validation_sessions)
    sessions = sorted(frame["date"].unique())
    pos = {d: i for i, d in enumerate(sessions)}
    for block in blocks:
        first_test = pos[block.test[0]]
        assert max(pos[d] for d in block.train) < first_test - FAST.label_horizon - 1 - FAST.validation_sessions
        assert max(pos[d] for d in block.validation) < first_test - FAST.label_horizon - 1
        assert set(oos.loc[oos["fold"] == block.fold, "date"]) == set(block.test)
    assert oos.loc[oos["fold"] == 0, "pred_return"].isna().all(), "the first fold has no earlier out-of-sample rows"
    assert oos.loc[oos["fold"] > 0, ["pred_return", "pred_lo", "pred_hi"]].notna().all().all()


def test_same_data_and_seed_give_the_same_model_and_figures():
    frame = panel(30, 300, 0.2, seed=4)
    a, b = walk_forward(frame, FAST, features=FEATURES), walk_forward(frame, FAST, features=FEATURES)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert score_oos(a, FAST)["rank_ic_mean"] == score_oos(b, FAST)["rank_ic_mean"]
    assert FAST.config_hash() == WalkForwardConfig(**{**FAST.__dict__}).config_hash()
