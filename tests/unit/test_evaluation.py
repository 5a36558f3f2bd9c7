"""tickerlake.evaluation: hand-computed examples for every function, plus properties on seeded
random data (walk-forward purging, null and planted signals, turnover control, break-even cost,
conformal coverage)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from tickerlake import evaluation as ev

pytestmark = pytest.mark.unit


def _days(n: int, start: dt.date = dt.date(2024, 1, 1)) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def _panel(sessions: int, names: int, signal: float, seed: int) -> pd.DataFrame:
    """score ~ N(0, 1), label = signal * score + N(0, 1), independent across names and sessions."""
    rng = np.random.default_rng(seed)
    score = rng.standard_normal((sessions, names))
    label = signal * score + rng.standard_normal((sessions, names))
    return pd.DataFrame({
        "date": np.repeat(_days(sessions), names),
        "ticker": np.tile([f"T{i:03d}" for i in range(names)], sessions),
        "score": score.ravel(),
        "label": label.ravel(),
    })


# ------------------------------------------------------------------ walk-forward blocks


def _positions(block: ev.WalkForwardBlock, sessions: list) -> tuple[list[int], list[int], list[int]]:
    where = {s: i for i, s in enumerate(sessions)}
    return ([where[s] for s in block.train], [where[s] for s in block.validation], [where[s] for s in block.test])


def test_walk_forward_expanding_by_hand():
    s = _days(20)
    blocks = ev.walk_forward_blocks(s, test_sessions=3, label_horizon=1, min_train=5)
    # purge = 2: the first test block starts at 5 train + 2 purged = position 7.
    expected = [
        (range(0, 5), range(7, 10)),
        (range(0, 8), range(10, 13)),
        (range(0, 11), range(13, 16)),
        (range(0, 14), range(16, 19)),
        (range(0, 17), range(19, 20)),
    ]
    assert len(blocks) == len(expected)
    for b, (train, test) in zip(blocks, expected, strict=True):
        tr, va, te = _positions(b, s)
        assert tr == list(train) and va == [] and te == list(test)
    assert [b.fold for b in blocks] == [0, 1, 2, 3, 4]


def test_walk_forward_validation_rolling_and_embargo_by_hand():
    s = _days(20)
    # validation of 2: [train 5][purge 2][val 2][purge 2][test] -> first test at 11.
    b = ev.walk_forward_blocks(s, test_sessions=4, label_horizon=1, min_train=5, validation_sessions=2)
    assert [_positions(x, s) for x in b] == [
        (list(range(0, 5)), [7, 8], [11, 12, 13, 14]),
        (list(range(0, 9)), [11, 12], [15, 16, 17, 18]),
        (list(range(0, 13)), [15, 16], [19]),
    ]
    # rolling window of 4 train sessions, horizon 2 (purge 3): first test at 4 + 3 = 7.
    b = ev.walk_forward_blocks(s, test_sessions=5, label_horizon=2, train_sessions=4)
    assert [_positions(x, s) for x in b] == [
        ([0, 1, 2, 3], [], [7, 8, 9, 10, 11]),
        ([5, 6, 7, 8], [], [12, 13, 14, 15, 16]),
        ([10, 11, 12, 13], [], [17, 18, 19]),
    ]
    # embargo 1: the session right after each test block leaves later train sets.
    b = ev.walk_forward_blocks(s, test_sessions=3, label_horizon=1, min_train=5, embargo=1)
    assert _positions(b[2], s)[0] == list(range(0, 10))  # 10 follows test block 0 (7-9)
    assert _positions(b[3], s)[0] == [*range(0, 10), 11, 12]  # 13 follows test block 1 (10-12)


def test_walk_forward_first_test_masks_and_errors():
    s = _days(30)
    b = ev.walk_forward_blocks(s, test_sessions=10, min_train=5, first_test=s[12])
    assert [x.test[0] for x in b] == [s[12], s[22]]
    dates = pd.Series([s[0], s[12], s[11], s[12], s[29]])
    train, val, test = b[0].masks(dates)
    assert train.tolist() == [True, False, False, False, False]
    assert val.tolist() == [False] * 5
    assert test.tolist() == [False, True, False, True, False]
    # duplicates and order of the input do not matter
    again = ev.walk_forward_blocks(list(reversed(s)) + s, test_sessions=10, min_train=5, first_test=s[12])
    assert all(np.array_equal(x.test, y.test) and np.array_equal(x.train, y.train) for x, y in zip(b, again, strict=True))
    with pytest.raises(ValueError):
        ev.walk_forward_blocks(s[:6], test_sessions=2, min_train=5)
    with pytest.raises(ValueError):
        ev.walk_forward_blocks(s, test_sessions=2)  # expanding needs min_train


def test_walk_forward_purge_property_over_random_parameters():
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(300):
        n = int(rng.integers(20, 200))
        h = int(rng.integers(0, 6))
        test_n = int(rng.integers(1, 30))
        val = int(rng.integers(0, 15))
        rolling = bool(rng.integers(0, 2))
        train_n = int(rng.integers(1, 60)) if rolling else None
        min_train = int(rng.integers(1, (train_n or 60) + 1))
        embargo = int(rng.integers(0, 4))
        s = list(range(1000, 1000 + n))  # any sortable session values
        try:
            blocks = ev.walk_forward_blocks(s, test_sessions=test_n, label_horizon=h, train_sessions=train_n,
                                            embargo=embargo, min_train=min_train, validation_sessions=val)
        except ValueError:
            assert min_train + (h + 1) * (2 if val else 1) + val >= n
            continue
        checked += 1
        purge = h + 1
        tests = [_positions(b, s)[2] for b in blocks]
        flat = [i for t in tests for i in t]
        # disjoint, ordered, contiguous, reaching the last session
        assert flat == list(range(flat[0], n))
        assert all(len(t) == test_n for t in tests[:-1]) and 1 <= len(tests[-1]) <= test_n
        for b in blocks:
            tr, va, te = _positions(b, s)
            t0 = te[0]
            assert all(i < t0 - purge for i in tr + va), "train/validation within the purge before the test block"
            assert len(va) == val and va == sorted(va)
            if va:
                assert va[-1] == t0 - purge - 1
                assert all(i < va[0] - purge for i in tr), "train within the purge before the validation block"
            if embargo == 0:
                assert len(tr) >= min_train
            if rolling:
                assert len(tr) <= train_n
            assert not set(tr) & set(va) and not set(tr) & set(te) and not set(va) & set(te)
            for earlier in tests[: b.fold]:
                assert not set(tr) & set(range(earlier[-1] + 1, earlier[-1] + 1 + embargo))
    assert checked > 100


# ------------------------------------------------------------------ per-session metrics


def _tiny() -> pd.DataFrame:
    rows = [
        ("a", [1, 2, 3], [1.0, 2.0, 3.0]),  # perfect
        ("b", [1, 2, 3], [3.0, 1.0, 2.0]),  # Pearson = Spearman = -0.5
        ("c", [1, 2, 3, 4], [1.0, 2.0, 3.0, 100.0]),  # Spearman 1, Pearson < 1
        ("d", [1, 2], [1.0, 2.0]),  # too few names
        ("e", [5, 5, 5], [1.0, 2.0, 3.0]),  # constant score
    ]
    out = [(d, s, y) for d, ss, ys in rows for s, y in zip(ss, ys, strict=True)]
    frame = pd.DataFrame(out, columns=["date", "score", "label"])
    nan_row = pd.DataFrame([("a", np.nan, 9.0), ("b", 4.0, np.nan)], columns=["date", "score", "label"])
    return pd.concat([frame, nan_row], ignore_index=True)


def test_ic_and_rank_ic_by_hand():
    frame = _tiny()
    # session c: x dev (-1.5, -.5, .5, 1.5), y mean 26.5, y dev (-25.5, -24.5, -23.5, 73.5)
    sxy = 1.5 * 25.5 + 0.5 * 24.5 - 0.5 * 23.5 + 1.5 * 73.5
    sxx = 2 * 1.5**2 + 2 * 0.5**2
    syy = 25.5**2 + 24.5**2 + 23.5**2 + 73.5**2
    ic = ev.ic_by_session(frame)
    assert list(ic.index) == ["a", "b", "c"]
    assert ic.to_numpy() == pytest.approx([1.0, -0.5, sxy / math.sqrt(sxx * syy)])
    ric = ev.rank_ic_by_session(frame)
    assert ric.to_numpy() == pytest.approx([1.0, -0.5, 1.0])
    # ties get average ranks: scores (1, 1, 2) -> ranks (1.5, 1.5, 3); labels ranks (1, 2, 3)
    ties = pd.DataFrame({"date": ["t"] * 3, "score": [1, 1, 2], "label": [0.1, 0.2, 0.3]})
    # x dev (-.5, -.5, 1), y dev (-1, 0, 1): sxy = 1.5, sxx = 1.5, syy = 2
    assert ev.rank_ic_by_session(ties).iloc[0] == pytest.approx(1.5 / math.sqrt(1.5 * 2))
    renamed = frame.rename(columns={"date": "d", "score": "p", "label": "ret"})
    assert ev.rank_ic_by_session(renamed, date="d", score="p", label="ret").equals(ric)


def test_rank_ic_is_pearson_on_average_ranks_per_session():
    frame = _panel(30, 25, 0.2, seed=3).rename(columns={"label": "ret_1d"})
    old = frame.groupby("date").apply(lambda g: g["score"].rank().corr(g["ret_1d"].rank()), include_groups=False)
    new = ev.rank_ic_by_session(frame, label="ret_1d")
    assert list(new.index) == list(old.index)
    np.testing.assert_allclose(new.to_numpy(), old.to_numpy(), rtol=1e-12, atol=1e-12)


def test_hit_rate_by_hand():
    frame = pd.DataFrame({
        "date": ["a"] * 4 + ["b"] * 4 + ["c"] * 4 + ["d"] * 5,
        "score": [1, 2, 3, 4] * 3 + [1, 2, 3, 4, 5],
        # a: label dev signs (-, -, +, +) match score signs (-, -, +, +)  -> 1
        # b: (+, +, -, -)                                                 -> 0
        # c: label (1, 0, 0, 1), mean .5: (+, -, -, +): matches at 2 and 4 -> .5
        # d: score dev signs (-, -, 0, +, +); label (5, 1, 2, 3, 4), mean 3: (+, -, -, 0, +). Names 3 and 4
        #    have a zero deviation and are left out; names 1, 2, 5: miss, hit, hit -> 2/3
        "label": [0.1, -0.2, 0.3, 0.4, 0.4, 0.3, -0.2, 0.1, 1, 0, 0, 1, 5, 1, 2, 3, 4],
    })
    assert ev.hit_rate_by_session(frame).to_dict() == pytest.approx({"a": 1.0, "b": 0.0, "c": 0.5, "d": 2 / 3})


def test_shuffled_labels_give_no_rank_ic():
    frame = _panel(250, 100, 0.3, seed=5)
    rng = np.random.default_rng(6)
    frame["label"] = frame.groupby("date")["label"].transform(lambda y: rng.permutation(y.to_numpy()))
    s = ev.summarize(ev.rank_ic_by_session(frame))
    assert abs(s["t_nw"]) < 3
    assert abs(s["mean"]) < 0.015
    assert abs(ev.summarize(ev.hit_rate_by_session(frame) - 0.5)["t_nw"]) < 3


def test_planted_signal_matches_bivariate_normal_spearman():
    signal, sessions, names = 0.1, 400, 200
    frame = _panel(sessions, names, signal, seed=8)
    rho = signal / math.sqrt(1 + signal**2)
    spearman = 6 / math.pi * math.asin(rho / 2)
    ric = ev.rank_ic_by_session(frame)
    ic = ev.ic_by_session(frame)
    se = 1 / math.sqrt(names) / math.sqrt(sessions)  # about the standard error of the mean daily IC
    assert len(ric) == sessions
    assert ric.mean() == pytest.approx(spearman, abs=4 * se)
    assert ic.mean() == pytest.approx(rho, abs=4 * se)
    assert ev.summarize(ric)["t_nw"] > 10
    assert ev.hit_rate_by_session(frame).mean() > 0.52


# ------------------------------------------------------------------ Newey-West, summaries


def test_newey_west_by_hand():
    x = [1.0, 3.0, 2.0, 4.0]
    # mean 2.5, e = (-1.5, .5, -.5, 1.5); gamma0 = 5 / 4; gamma1 = (-.75 - .25 - .75) / 4
    gamma0, gamma1 = 5 / 4, -1.75 / 4
    s1 = gamma0 + 2 * (1 - 1 / 2) * gamma1
    assert ev.newey_west_t(x, 1, small_sample=False) == pytest.approx(2.5 / math.sqrt(s1 / 4))
    assert ev.newey_west_t(x, 1) == pytest.approx(2.5 / math.sqrt(s1 * 4 / 3 / 4))
    # lags 2: gamma2 = (e2 e0 + e3 e1) / 4 = (.75 + .75) / 4, weights 2/3 and 1/3
    s2 = gamma0 + 2 * (2 / 3) * gamma1 + 2 * (1 / 3) * (1.5 / 4)
    assert ev.newey_west_t(x, 2, small_sample=False) == pytest.approx(2.5 / math.sqrt(s2 / 4))
    # lags beyond n - 1 are capped; NaN entries are dropped
    assert ev.newey_west_t(x, 50) == ev.newey_west_t(x, 3)
    assert ev.newey_west_t([1.0, np.nan, 3.0, 2.0, 4.0], 1) == ev.newey_west_t(x, 1)
    # lags 0 is the classic one-sample t
    sd = math.sqrt(((x[0] - 2.5) ** 2 + (x[1] - 2.5) ** 2 + (x[2] - 2.5) ** 2 + (x[3] - 2.5) ** 2) / 3)
    assert ev.newey_west_t(x, 0) == pytest.approx(2.5 / (sd / 2))
    assert math.isnan(ev.newey_west_t([1.0], 0))
    assert ev.newey_west_t([2.0, 2.0, 2.0], 1) == math.inf


def test_newey_west_at_lag_zero_is_the_plain_t():
    ic = pd.Series(np.random.default_rng(1).normal(0.02, 0.1, 300))
    assert ev.newey_west_t(ic, 0) == pytest.approx(ic.mean() / ic.std(ddof=1) * math.sqrt(len(ic)), rel=1e-12)


def test_newey_west_widens_for_overlapping_labels():
    # 5-session overlapping sums of white noise: a moving average of order 4.
    e = np.random.default_rng(2).standard_normal(3000) + 0.05
    x = np.convolve(e, np.ones(5), mode="valid")
    naive, hac = ev.newey_west_t(x, 0), ev.newey_west_t(x, 4 + 10)
    assert abs(hac) < abs(naive) / 1.6  # the true ratio is sqrt(25 / 5) ~ 2.2


def test_newey_west_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    x = np.random.default_rng(4).normal(0.01, 0.05, 120)
    exog = np.ones((len(x), 1))
    for lags in (0, 1, 5):
        for corr in (False, True):
            res = sm.OLS(x, exog).fit(cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": corr})
            assert ev.newey_west_t(x, lags, small_sample=corr) == pytest.approx(float(res.tvalues[0]), rel=1e-9)


def test_summarize_and_by_year_by_hand():
    idx = [dt.date(2023, 12, 28), dt.date(2023, 12, 29), dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    series = pd.Series([0.1, 0.2, -0.1, 0.2], index=idx)
    s = ev.summarize(series, label_horizon=1, lags=1)
    std = math.sqrt((0.0**2 + 0.1**2 + 0.2**2 + 0.1**2) / 3)
    assert s["mean"] == pytest.approx(0.1)
    assert s["std"] == pytest.approx(std)
    assert s["icir"] == pytest.approx(0.1 / std)
    assert s["icir_annual"] == pytest.approx(0.1 / std * math.sqrt(252))
    assert s["t_nw"] == ev.newey_west_t(series, 1)
    assert (s["n"], s["hit_rate"], s["lags"]) == (4, 0.75, 1)
    # default lags: max(h - 1, floor(4 (n / 100) ** (2 / 9)))
    assert ev.default_lags(4, 1) == 1 and ev.default_lags(4, 10) == 9 and ev.default_lags(250, 1) == 4
    assert ev.summarize(series, label_horizon=10)["lags"] == 9
    years = ev.by_year(series)
    assert list(years.index) == [2023, 2024]
    assert years["mean"].to_numpy() == pytest.approx([0.15, 0.05])
    assert years["n"].tolist() == [2, 2]
    assert years["hit_rate"].tolist() == [1.0, 0.5]
    assert math.isnan(ev.summarize([])["mean"])


def test_paired_difference_by_hand():
    a = pd.Series([0.05, 0.02, 0.04, np.nan, 0.01], index=[1, 2, 3, 4, 5])
    b = pd.Series([0.02, 0.03, 0.00, 0.02, 0.02], index=[5, 2, 3, 4, 9])
    # common non-NaN sessions 2, 3, 5: d = (-0.01, 0.04, -0.01)
    out = ev.paired_difference_t(a, b, lags=1)
    assert out["mean_diff"] == pytest.approx(0.02 / 3)
    assert out["n"] == 3 and out["share_a_better"] == pytest.approx(1 / 3)
    assert out["t_nw"] == pytest.approx(ev.newey_west_t([-0.01, 0.04, -0.01], 1))


# ------------------------------------------------------------------ buckets


def test_decile_returns_by_hand():
    frame = pd.DataFrame({
        "date": ["a"] * 10 + ["b"] * 20 + ["c"] * 5,
        "score": list(range(10)) + list(range(20))[::-1] + list(range(5)),
        "label": [i * 0.01 for i in range(10)] + [i * 0.001 for i in range(20)][::-1] + [9.0] * 5,
    })
    table = ev.decile_returns_by_session(frame)
    assert list(table.index) == ["a", "b"]  # c has fewer names than buckets
    # a: one name per bucket; b: two per bucket, scores (2j, 2j + 1) with labels (2j, 2j + 1) / 1000
    assert table.loc["a"].to_numpy() == pytest.approx([i * 0.01 for i in range(10)])
    assert table.loc["b"].to_numpy() == pytest.approx([(2 * j + 0.5) * 0.001 for j in range(10)])
    avg = ev.decile_returns(frame)
    assert avg.to_numpy() == pytest.approx([(i * 0.01 + (2 * i + 0.5) * 0.001) / 2 for i in range(10)])
    tmb = ev.top_minus_bottom(frame)
    assert tmb.to_dict() == pytest.approx({"a": 0.09, "b": 0.018})
    # uneven buckets: 5 names in 2 buckets -> ranks 1-3 in bucket 1 ((r - 1) * 2 // 5 = 0, 0, 0), 4-5 in 2
    five = pd.DataFrame({"date": ["x"] * 5, "score": [5, 4, 3, 2, 1], "label": [10.0, 8.0, 6.0, 4.0, 2.0]})
    assert ev.decile_returns(five, n_bins=2).to_numpy() == pytest.approx([4.0, 9.0])


# ------------------------------------------------------------------ long-short portfolio


def test_long_short_without_control_by_hand():
    frame = pd.DataFrame({
        "date": [1] * 6 + [2] * 6 + [3] * 5,
        "ticker": list("ABCDEF") + list("ABCDEF") + list("ABCDE"),
        "score": [6, 5, 4, 3, 2, 1] + [5, 6, 4, 3, 2, 1] + [5, 6, 4, 1, 3],
        "label": [0.02, 0.0, 0.0, 0.0, 0.0, -0.01] + [0.0, 0.03, 0.0, 0.0, 0.0, 0.01]
        + [0.0, -0.01, 0.0, 0.02, 0.0],
    })
    res = ev.long_short_portfolio(frame, k=1, cost_bps_per_side=10)
    s = res.sessions
    # 1: build long A, short F (2); 2: long A -> B (2); 3: F absent, short D (F: 1 out, D: 1 in)
    assert s["gross"].to_numpy() == pytest.approx([0.02 + 0.01, 0.03 - 0.01, -0.01 - 0.02])
    assert s["turnover"].to_numpy() == pytest.approx([2.0, 2.0, 2.0])
    assert s["net"].to_numpy() == pytest.approx(s["gross"].to_numpy() - 2 * 0.001)
    assert s["n_long"].tolist() == [1, 1, 1] and s["n_short"].tolist() == [1, 1, 1]
    assert res.summary["mean_turnover"] == pytest.approx(2.0)
    assert res.summary["mean_gross"] == pytest.approx(0.02 / 3)
    # fraction: floor(0.34 * 6) = 2 names a leg on 6 names, 1 on 5
    res = ev.long_short_portfolio(frame, fraction=0.34)
    assert res.sessions["n_long"].tolist() == [2, 2, 1]
    assert res.sessions["gross"].iloc[0] == pytest.approx((0.02 + 0.0) / 2 - (0.0 - 0.01) / 2)
    # horizon h divides the label
    half = ev.long_short_portfolio(frame, k=1, label_horizon=2).sessions["gross"]
    assert half.to_numpy() == pytest.approx(s["gross"].to_numpy() / 2)


def test_long_short_turnover_control_by_hand():
    names = list("ABCDEFGHIJ")
    # session 1: A best ... J worst.  k = 2, keep within top/bottom 4, at most 1 swap a leg.
    s1 = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    # session 2 ranks (best first): C D A H E F G B I J
    #   long: A now 3rd (kept), B now 8th (unacceptable) -> swap B for the best non-held, C.
    #   short (worst first): J I B G F E H A D C: I, J still bottom 2 -> unchanged.
    s2 = [8, 3, 10, 9, 6, 5, 4, 7, 2, 1]
    # session 3 ranks (best first): E F G H I J A B C D
    #   long: A 7th, C 9th: both unacceptable, only 1 swap -> sell C (the worse), buy E.
    #   short (worst first, without the long book A, E): D C B J I H G F: J 4th (kept, within 4),
    #   I 5th (unacceptable) -> sell I, short D.
    s3 = [4, 3, 2, 1, 10, 9, 8, 7, 6, 5]
    frame = pd.DataFrame({
        "date": np.repeat([1, 2, 3], 10),
        "ticker": names * 3,
        "score": s1 + s2 + s3,
        "label": [0.0] * 30,
    })
    last = {"A": 0.01, "E": 0.03, "J": 0.02, "D": 0.04}
    on3 = frame["date"] == 3
    frame.loc[on3, "label"] = frame.loc[on3, "ticker"].map(last).fillna(0.0)
    res = ev.long_short_portfolio(frame, k=2, max_swap_fraction=0.5, keep_within=2.0)
    s = res.sessions
    # swap of one name in a 2-name leg: |0 - 1/2| + |1/2 - 0| = 1
    assert s["turnover"].tolist() == pytest.approx([2.0, 1.0, 2.0])
    # session 3 book: long {A, E}, short {J, D}
    assert s["gross"].iloc[2] == pytest.approx((0.01 + 0.03) / 2 - (0.02 + 0.04) / 2)
    free = ev.long_short_portfolio(frame, k=2).sessions
    # no control: 2: long {C, D} (2), short unchanged; 3: long {E, F} (2), short {C, D} (2)
    assert free["turnover"].tolist() == pytest.approx([2.0, 2.0, 4.0])


def _persistent_panel(sessions: int, names: int, seed: int) -> pd.DataFrame:
    """A slowly moving score (AR(1), phi 0.9) and label = 0.05 * score + noise."""
    rng = np.random.default_rng(seed)
    score = np.empty((sessions, names))
    score[0] = rng.standard_normal(names)
    for t in range(1, sessions):
        score[t] = 0.9 * score[t - 1] + math.sqrt(1 - 0.81) * rng.standard_normal(names)
    label = 0.002 * score + 0.02 * rng.standard_normal((sessions, names))
    return pd.DataFrame({
        "date": np.repeat(_days(sessions), names),
        "ticker": np.tile([f"T{i:03d}" for i in range(names)], sessions),
        "score": score.ravel(),
        "label": label.ravel(),
    })


def test_turnover_control_reduces_turnover_and_respects_the_limit():
    frame = _persistent_panel(200, 60, seed=9)
    free = ev.long_short_portfolio(frame, k=10)
    ctl = ev.long_short_portfolio(frame, k=10, max_swap_fraction=0.2)
    assert ctl.summary["mean_turnover"] < 0.6 * free.summary["mean_turnover"]
    # constant universe: at most 2 swaps a leg -> |dw| <= 2 * 2 / 10 per leg, both legs
    assert (ctl.sessions["turnover"].iloc[1:] <= 4 * 2 / 10 + 1e-12).all()
    assert (ctl.sessions["n_long"] == 10).all() and (ctl.sessions["n_short"] == 10).all()
    # the signal survives: the controlled book still earns a positive gross mean
    assert ctl.summary["mean_gross"] > 0 and free.summary["mean_gross"] > 0


def test_break_even_cost_zeroes_the_net_mean():
    frame = _persistent_panel(150, 40, seed=10)
    res = ev.long_short_portfolio(frame, k=8, max_swap_fraction=0.25)
    be = res.summary["break_even_cost_bps"]
    assert be > 0
    at_be = ev.long_short_portfolio(frame, k=8, max_swap_fraction=0.25, cost_bps_per_side=be)
    assert abs(at_be.sessions["net"].mean()) < 1e-12
    # the summary's cost grid: net mean = gross mean - mean turnover * c
    for c in (0, 5, 10, 20):
        expected = res.summary["mean_gross"] - res.summary["mean_turnover"] * c / 1e4
        assert res.summary[f"mean_net_{c}bp"] == pytest.approx(expected)
    assert res.summary["sharpe_net_20bp"] < res.summary["sharpe_net_0bp"] == pytest.approx(res.summary["sharpe_gross"])
    assert ev.break_even_cost_bps(pd.DataFrame({"gross": [0.001, 0.003], "turnover": [1.0, 3.0]})) == pytest.approx(10.0)


def test_long_short_legs_never_overlap():
    frame = _persistent_panel(60, 9, seed=12)
    frame = frame.sample(frac=0.8, random_state=1)  # names drop in and out
    for kw in ({"k": 4}, {"k": 4, "max_swap_fraction": 0.25, "keep_within": 3.0}, {"fraction": 0.5}):
        res = ev.long_short_portfolio(frame, **kw)
        counts = frame.groupby("date").size()
        assert ((res.sessions["n_long"] + res.sessions["n_short"]) <= counts.loc[res.sessions.index]).all()
    with pytest.raises(ValueError):
        ev.long_short_portfolio(frame, k=2, fraction=0.1)


# ------------------------------------------------------------------ conformal intervals


def test_conformal_interval_by_hand():
    r = [2.0, -1.0, 5.0, 0.0, -3.0]
    # |r| sorted 0 1 2 3 5; coverage .5 -> k = ceil(6 * .5) = 3 -> q = 2
    assert ev.conformal_interval(r, 0.5) == (-2.0, 2.0)
    # coverage .8 -> k = ceil(4.8) = 5 -> q = 5; .9 -> k = 6 > 5 -> infinite
    assert ev.conformal_interval(r, 0.8) == (-5.0, 5.0)
    assert ev.conformal_interval(r, 0.9) == (-math.inf, math.inf)
    nine = [3.0, -4.0, 0.0, 1.0, -2.0, 4.0, -1.0, 2.0, -3.0]
    # asymmetric, coverage .6: k_lo = floor(10 * .2) = 2 -> -3; k_hi = ceil(10 * .8) = 8 -> 3
    assert ev.conformal_interval(nine, 0.6, symmetric=False) == (-3.0, 3.0)
    skew = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert ev.conformal_interval(skew, 0.6, symmetric=False) == (1.0, 7.0)
    assert ev.interval_coverage([0.0, 1.0, 2.0, np.nan], -1.0, 1.0, [1.0, 2.5, 1.5, 0.0]) == pytest.approx(2 / 3)
    assert ev.interval_coverage([0.0, 0.0], [-1.0, -0.1], [1.0, 0.1], [0.5, 0.5]) == 0.5


def test_conformal_coverage_on_exchangeable_data():
    rng = np.random.default_rng(13)
    pred = rng.standard_normal(21000)
    realized = pred + rng.standard_t(3, 21000)  # heavy-tailed, exchangeable residuals
    cal, new = slice(0, 1000), slice(1000, None)
    for symmetric in (True, False):
        lo, hi = ev.conformal_interval(realized[cal] - pred[cal], 0.8, symmetric=symmetric)
        assert ev.interval_coverage(pred[new], lo, hi, realized[new]) == pytest.approx(0.8, abs=0.02)
    # finite-sample level: with n = 9 and coverage .8, k = 8, so the coverage is exactly 8 / 10 on
    # average over calibration draws.
    trials = rng.standard_normal((20000, 10))
    hits = [abs(t[9]) <= ev.conformal_interval(t[:9], 0.8)[1] for t in trials]
    assert np.mean(hits) == pytest.approx(0.8, abs=0.01)
