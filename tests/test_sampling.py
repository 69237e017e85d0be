"""The sampling filters on hand-built distributions: what survives each filter, and what gets drawn."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinygpt.errors import TinyGPTError
from tinygpt.sampling import (apply_repetition_penalty, sample_next, softmax, top_k_filter, top_p_filter,
                              validate_sampling)


def kept(logits: np.ndarray) -> set[int]:
    return set(np.flatnonzero(np.isfinite(logits)).tolist())


def logits_of(probs) -> np.ndarray:
    return np.log(np.asarray(probs, dtype=np.float32))


def test_top_k_keeps_exactly_k_most_likely():
    logits = np.array([1.0, 5.0, 3.0, 4.0, 2.0], dtype=np.float32)
    assert kept(top_k_filter(logits, 2)) == {1, 3}
    assert kept(top_k_filter(logits, 1)) == {1}
    assert kept(top_k_filter(logits, 0)) == set(range(5))   # 0 = off
    assert kept(top_k_filter(logits, 99)) == set(range(5))
    np.testing.assert_array_equal(top_k_filter(logits, 2)[[1, 3]], logits[[1, 3]])  # survivors unchanged


def test_top_k_keeps_exactly_k_even_with_ties():
    logits = np.array([2.0, 7.0, 7.0, 7.0, 1.0], dtype=np.float32)
    assert kept(top_k_filter(logits, 2)) == {1, 2}  # ties go to the smaller id


@given(st.lists(st.floats(-20, 20, width=32), min_size=1, max_size=50), st.integers(1, 60))
def test_top_k_always_keeps_min_k_vocab(values, k):
    logits = np.array(values, dtype=np.float32)
    survivors = kept(top_k_filter(logits, k))
    assert len(survivors) == min(k, len(values))
    assert min(logits[list(survivors)]) >= max(np.delete(logits, list(survivors)), default=-np.inf)


def test_top_p_keeps_smallest_set_reaching_p():
    logits = logits_of([0.125, 0.5, 0.0625, 0.25, 0.0625])  # sorted: 0.5, 0.25, 0.125, 0.0625, 0.0625
    assert kept(top_p_filter(logits, 0.5)) == {1}           # 0.5 reaches 0.5 exactly
    assert kept(top_p_filter(logits, 0.51)) == {1, 3}
    assert kept(top_p_filter(logits, 0.75)) == {1, 3}
    assert kept(top_p_filter(logits, 0.8)) == {0, 1, 3}
    assert kept(top_p_filter(logits, 0.01)) == {1}          # the most likely token always survives
    assert kept(top_p_filter(logits, 1.0)) == set(range(5))


@given(st.lists(st.floats(-10, 10, width=32), min_size=1, max_size=40), st.floats(0.01, 0.99))
def test_top_p_set_is_minimal_and_sufficient(values, p):
    logits = np.array(values, dtype=np.float32)
    probs = softmax(logits).astype(np.float64)
    survivors = sorted(kept(top_p_filter(logits, p)), key=lambda i: -probs[i])
    mass = probs[survivors].sum()
    assert mass >= p - 1e-6 or len(survivors) == len(values)
    assert mass - probs[survivors[-1]] < p + 1e-6   # without its least likely member the set falls short


def test_repetition_penalty_lowers_repeated_tokens_both_signs():
    logits = np.array([2.0, -2.0, 1.0, -1.0], dtype=np.float32)
    out = apply_repetition_penalty(logits, context=[0, 1, 0], penalty=2.0)
    np.testing.assert_allclose(out, [1.0, -4.0, 1.0, -1.0])  # 2/2, -2*2, untouched, untouched
    assert all(out[i] < logits[i] for i in (0, 1))
    np.testing.assert_array_equal(apply_repetition_penalty(logits, [0, 1], 1.0), logits)
    np.testing.assert_array_equal(logits, [2.0, -2.0, 1.0, -1.0])  # the input is not modified


def test_repetition_penalty_changes_greedy_choice():
    logits = np.array([3.0, 2.0, 0.0], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert sample_next(logits, rng, temperature=0) == 0
    assert sample_next(logits, rng, temperature=0, repetition_penalty=2.0, context=[0]) == 1


def test_greedy_is_argmax():
    rng = np.random.default_rng(0)
    for seed in range(20):
        logits = np.random.default_rng(seed).normal(size=100).astype(np.float32)
        assert sample_next(logits, rng, temperature=0.0) == int(np.argmax(logits))
    assert sample_next(np.array([1.0, 9.0, 9.0]), rng, temperature=0) == 1


def test_sampling_follows_the_distribution_and_never_picks_filtered_tokens():
    logits = logits_of([0.5, 0.3, 0.15, 0.05])
    rng = np.random.default_rng(1234)
    draws = np.array([sample_next(logits, rng) for _ in range(4000)])
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 4000, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    assert set(sample_next(logits, rng, top_k=2) for _ in range(300)) == {0, 1}
    assert set(sample_next(logits, rng, top_p=0.8) for _ in range(300)) == {0, 1}
    assert set(sample_next(logits, rng, temperature=0.01) for _ in range(50)) == {0}  # cold = nearly greedy


def test_same_seed_same_tokens():
    logits = np.random.default_rng(0).normal(size=50).astype(np.float32)
    a = [sample_next(logits, np.random.default_rng(7), temperature=1.3, top_k=20, top_p=0.9) for _ in range(5)]
    rng1, rng2 = np.random.default_rng(7), np.random.default_rng(7)
    assert [sample_next(logits, rng1, top_p=0.9) for _ in range(30)] == \
           [sample_next(logits, rng2, top_p=0.9) for _ in range(30)]
    assert len(set(a)) == 1


def test_zero_probability_tokens_are_never_drawn():
    logits = np.array([-np.inf, 0.0, -np.inf, 0.0, -np.inf], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert set(sample_next(logits, rng) for _ in range(200)) == {1, 3}


@pytest.mark.parametrize("kwargs, message", [
    (dict(top_p=0.0), "top-p must be in (0, 1] (1 = off), got 0.0"),
    (dict(top_p=1.5), "top-p must be in (0, 1] (1 = off), got 1.5"),
    (dict(temperature=-0.1), "temperature must be >= 0 (0 = greedy), got -0.1"),
    (dict(top_k=-1), "top-k must be an integer >= 0 (0 = off), got -1"),
    (dict(repetition_penalty=0.0), "repetition penalty must be > 0 (1 = off), got 0.0"),
])
def test_bad_settings_give_one_line(kwargs, message):
    with pytest.raises(TinyGPTError) as e:
        validate_sampling(**kwargs)
    assert str(e.value) == message
    with pytest.raises(TinyGPTError):
        sample_next(np.zeros(3, dtype=np.float32), np.random.default_rng(0), **kwargs)
