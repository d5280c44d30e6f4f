import math

import numpy as np
import pytest

from expand.search.confidence import (
    Evidence,
    choose_seed_std,
    decode_per_video,
    encode_per_video,
    seed_spread,
    step_confidence,
    video_ids_digest,
)
from expand.search.select import Scored, select, select_tied
from expand.search.trial import TrialResult

VIDEOS = video_ids_digest(f"v{i}" for i in range(200))


def evidence(axis, correct, gflops=1.0, videos=VIDEOS):
    correct = np.atleast_2d(np.asarray(correct, dtype=bool))
    return Evidence(axis, gflops, [float(r.mean()) for r in correct], correct, videos)


def test_per_video_bits_round_trip_and_stay_small():
    rng = np.random.default_rng(0)
    c1, c5 = rng.random(8001) < 0.3, rng.random(8001) < 0.6
    d = encode_per_video(c1, c5, "abc")
    assert d["n"] == 8001 and len(d["top1"]) < 1400  # 1 bit a video, base64
    assert (decode_per_video(d) == c1).all() and (decode_per_video(d, "top5") == c5).all()
    assert decode_per_video({}) is None


@pytest.mark.parametrize("k", [2, 3, 5])
def test_identical_networks_share_the_confidence_equally(k):
    correct = np.random.default_rng(1).random(200) < 0.4
    cands = [evidence(f"a{i}", correct) for i in range(k)]
    exact = step_confidence("paper", cands, None, 0.5, seed_std=0.0, replicates=300)
    assert exact.confidence == pytest.approx([1 / k] * k)  # ties are shared, never given to the first
    noisy = step_confidence("paper", cands, None, 0.5, seed_std=0.03, replicates=2000)
    assert noisy.confidence == pytest.approx([1 / k] * k, abs=0.05)
    assert sum(noisy.confidence) == pytest.approx(1.0)


def test_a_candidate_ahead_on_every_video_is_a_sure_pick():
    base = np.zeros(200, dtype=bool)
    base[:60] = True
    better = base.copy()
    better[60:100] = True  # right on everything the other gets right, and 40 more
    conf = step_confidence("paper", [evidence("b", base), evidence("a", better)], None, 0.5, seed_std=0.0)
    assert conf.confidence[1] > 0.999
    assert conf.method.startswith("paired bootstrap over 200 videos")


def test_pairing_sees_a_small_but_consistent_difference():
    """6 more right of 200, on the same videos: unpaired binomials would call this a coin toss (~0.6)."""
    base = np.zeros(200, dtype=bool)
    base[:80] = True
    better = base.copy()
    better[80:86] = True
    paired = step_confidence("best_accuracy", [evidence("b", base), evidence("a", better)], None, 1.0, 0.0)
    assert paired.confidence[1] > 0.97
    # the same two accuracies on unrelated videos are far less certain
    shuffled = np.random.default_rng(3).permutation(better)
    unpaired = step_confidence("best_accuracy", [evidence("b", base), evidence("a", shuffled)], None, 1.0, 0.0)
    assert 0.55 < unpaired.confidence[1] < 0.85


def test_seed_noise_makes_a_small_gap_uncertain_and_more_seeds_make_it_surer():
    base = np.zeros(200, dtype=bool)
    base[:80] = True
    better = base.copy()
    better[80:84] = True  # +2 points
    one = step_confidence("best_accuracy", [evidence("b", base), evidence("a", better)], None, 1.0, 0.035)
    four = step_confidence("best_accuracy", [evidence("b", np.stack([base] * 4)),
                                             evidence("a", np.stack([better] * 4))], None, 1.0, 0.035)
    assert 0.55 < one.confidence[1] < 0.8  # 2 points against 3.5 points of seed noise per trial
    assert four.confidence[1] > one.confidence[1] + 0.1
    assert four.se[1] < one.se[1]


def test_the_parent_is_resampled_with_the_candidates_for_gain_based_rules():
    rng = np.random.default_rng(4)
    parent = rng.random(200) < 0.3
    a = parent | (rng.random(200) < 0.10)
    b = parent | (rng.random(200) < 0.25)
    ev_a, ev_b, ev_p = evidence("a", a, 1.0), evidence("b", b, 2.0), evidence("parent", parent, 0.5)
    conf = step_confidence("gain_per_gflop", [ev_a, ev_b], ev_p, 0.5, 0.0)
    # the point estimate's pick is the likelier one
    pick = select("gain_per_gflop", [Scored("a", 1.0, ev_a.top1), Scored("b", 2.0, ev_b.top1)], ev_p.top1, 0.5)
    assert conf.confidence[pick] > 0.5


def test_without_per_video_results_only_a_known_seed_std_gives_a_confidence():
    cands = [Evidence("a", 1.0, [0.30]), Evidence("b", 1.0, [0.40])]
    unknown = step_confidence("best_accuracy", cands, None, 1.0, math.nan)
    assert all(math.isnan(c) for c in unknown.confidence) and unknown.method.startswith("unknown")
    known = step_confidence("best_accuracy", cands, None, 1.0, 0.035)
    # 10 points apart, each with 3.5 points of noise: P = Phi(0.10 / (0.035 sqrt 2)) = 0.978
    assert known.confidence[1] == pytest.approx(0.978, abs=0.01)


def test_results_on_different_video_lists_are_not_paired():
    rng = np.random.default_rng(5)
    a = evidence("a", rng.random(200) < 0.3)
    b = evidence("b", rng.random(200) < 0.3, videos=video_ids_digest(["other"]))
    assert step_confidence("paper", [a, b], None, 1.0, math.nan).method.startswith("unknown")


def test_evidence_from_results_decodes_each_seed():
    bits = [np.arange(10) < 3, np.arange(10) < 5]
    results = [TrialResult("t", "ok", top1=float(b.mean()), per_video=encode_per_video(b, None, "v")) for b in bits]
    ev = Evidence.from_results("spatial", 1.0, results)
    assert ev.seeds == 2 and ev.top1 == pytest.approx(0.4) and ev.correct.shape == (2, 10)
    mixed = results + [TrialResult("t", "ok", top1=0.5)]  # a seed without per-video results
    assert Evidence.from_results("spatial", 1.0, mixed).correct is None


def test_seed_std_is_configured_or_measured_and_shrunk_towards_the_binomial_prior():
    cands = [evidence("a", np.arange(200) < 40)]  # p = 0.2, binomial std 0.0283
    assert choose_seed_std(0.05, (0.0, 0.0), cands) == (0.05, "configured (search.confirm.seed_std)")
    std, source = choose_seed_std(None, (0.0, 0.0), cands)
    assert std == pytest.approx(math.sqrt(0.2 * 0.8 / 200)) and "binomial prior" in source
    ss, dof = seed_spread([[0.20, 0.30], [0.25, 0.35], [0.5]])  # two pairs 10 points apart
    assert dof == 2 and ss == pytest.approx(0.01)
    std, source = choose_seed_std(None, (ss, dof), cands)
    assert std == pytest.approx(math.sqrt((2 * 0.0008 + 0.01) / 4)) and "2 dof measured" in source
    assert choose_seed_std(None, (ss, dof), [Evidence("a", 1.0, [0.2])])[0] == pytest.approx(math.sqrt(0.005))
    assert math.isnan(choose_seed_std(None, (0.0, 0.0), [Evidence("a", 1.0, [0.2])])[0])


def test_select_tied_lists_only_what_listing_order_breaks():
    cands = [Scored("a", 1.0, 0.5), Scored("b", 1.0, 0.5), Scored("c", 1.05, 0.5), Scored("d", 1.0, 0.4)]
    assert select("paper", cands, 0.3, 0.5) == 0
    assert select_tied("paper", cands, 0.3, 0.5) == [0, 1]  # c costs more; d is less accurate
