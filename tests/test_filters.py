"""Tests for infwidth.studies.filter_clusters: label clusters, SNR, readout, AFCC, validation."""

import numpy as np
import pytest

import infwidth as iw
from infwidth.studies import filter_clusters as FC
from infwidth.studies.filter_clusters import filters as F


def _bool(rows):
    return np.array(rows, dtype=bool)


# --------------------------------------------------------------------------- clusters
CASES = [
    # (above-threshold matrix, clusters, noise)
    (np.eye(3, dtype=bool), ((0,), (1,), (2,)), 0),
    (_bool([[1, 1, 0], [1, 1, 0], [0, 0, 1]]), ((0, 1), (2,)), 0),
    # overlapping: {0,1} and {1,2} complete, {0,2} not; greedy takes {0,1}, 2 is alone,
    # the 1–2 pair becomes noise.
    (_bool([[1, 1, 0], [1, 1, 1], [0, 1, 1]]), ((0, 1), (2,)), 2),
    # asymmetric pair: M[0,1] above, M[1,0] not -> no cluster {0,1}; one noise entry.
    (_bool([[1, 1], [0, 1]]), ((0,), (1,)), 1),
    # label 0 has a weak diagonal: skipped; its row/column entries (0,1), (0,2), (1,0) are noise.
    (_bool([[0, 1, 1], [1, 1, 1], [0, 1, 1]]), ((1, 2),), 3),
    # greedy is not maximum-clique: edges 0-1, 0-2, 0-3, 2-3. Label order gives {0,1},{2,3}
    # (the larger {0,2,3} is not found); the 0-2 and 0-3 entries (both orders) are noise.
    (_bool([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 1, 1], [1, 0, 1, 1]]), ((0, 1), (2, 3)), 4),
    # all-ones: one cluster of everything.
    (np.ones((4, 4), bool), ((0, 1, 2, 3),), 0),
    # nothing above threshold
    (np.zeros((3, 3), bool), (), 0),
]


@pytest.mark.parametrize("a, clusters, noise", CASES)
def test_find_clusters_hand_made(a, clusters, noise):
    assert F.find_clusters(a) == clusters
    assert F.cluster_noise(a, clusters) == noise


def test_find_clusters_float_normalisation_and_threshold():
    # max = 10 -> normalised entries 1, 0.31, 0.29, 0.5, ...; threshold 0.3 is strict.
    m = np.array([[10.0, 3.1, 2.9],
                  [3.1, 5.0, -4.0],
                  [2.9, 0.0, 4.0]])
    assert F.find_clusters(m, 0.3) == ((0, 1), (2,))
    assert F.cluster_noise(m, ((0, 1), (2,)), 0.3) == 0
    # at t = 0.45: 3.1 is no longer above; 5.0 (0.5) still is
    assert F.find_clusters(m, 0.45) == ((0,), (1,))
    # t = 0.2: 2.9 (0.29) joins; {0,1} closed, 2 fails with 1 (0.0) -> {2}; noise M[0,2], M[2,0]
    assert F.find_clusters(m, 0.2) == ((0, 1), (2,))
    assert F.cluster_noise(m, ((0, 1), (2,)), 0.2) == 2
    # scale invariance and a non-positive maximum
    assert F.find_clusters(7.0 * m, 0.3) == F.find_clusters(m, 0.3)
    assert F.find_clusters(-np.abs(m), 0.3) == ()
    assert F.cluster_noise(-np.abs(m), (), 0.3) == 0


def test_analyze_filters_signal_noise():
    mats = np.stack([CASES[2][0], CASES[5][0][:3, :3], np.zeros((3, 3), bool)]).astype(float)
    fc = F.analyze_filters(mats)
    assert fc.clusters == (((0, 1), (2,)), ((0, 1), (2,)), ())
    np.testing.assert_array_equal(fc.signal, [5, 5, 0])
    # filter 1 is [[1,1,1],[1,1,0],[1,0,1]]: clusters {0,1},{2}; noise M[0,2], M[2,0]
    np.testing.assert_array_equal(fc.noise, [2, 2, 0])
    assert fc.clusters_per_filter == pytest.approx(4 / 3)
    assert fc.mean_cluster_size == pytest.approx(6 / 4)
    assert fc.noise_per_filter == pytest.approx(4 / 3)
    assert fc.snr() == pytest.approx((10 / 3) / (4 / 3))
    np.testing.assert_array_equal(fc.mask(), [[1, 1, 1], [1, 1, 1], [0, 0, 0]])


# --------------------------------------------------------------------------- SNR
def test_snr_definitions_and_plugin():
    s, n = np.array([4.0, 2.0, 0.0]), np.array([1.0, 0.0, 2.0])
    assert F.snr(s, n) == pytest.approx(2.0 / 1.0)
    assert F.snr(s, n, "mean_of_ratios") == pytest.approx((2.0 + 2.0 + 0.0) / 3)
    assert F.snr(s, n, lambda a, b: float(np.median(a) - np.median(b))) == pytest.approx(1.0)
    assert F.snr(s, np.zeros(3)) == np.inf
    assert np.isnan(F.snr(np.zeros(3), np.zeros(3)))
    with pytest.raises(ValueError, match="definition"):
        F.snr(s, n, "bogus")
    with pytest.raises(ValueError, match="signal and noise"):
        F.snr(s, n[:2])


def test_max_label_error():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 0, 1, 0, 0, 2, 2])
    assert F.max_label_error(y, p) == 1.0
    assert F.max_label_error(y, y) == 0.0
    assert F.max_label_error(y[:4], p[:4]) == 0.25


# --------------------------------------------------------------------------- fields, readout
def test_fields_sum_to_logits_and_match_brute_force():
    rng = np.random.default_rng(0)
    phi = np.abs(rng.normal(size=(40, 2, 3, 5)))   # (n, H, W, F)
    w = rng.normal(size=(6, 5, 4))                  # (P, F, C)
    y = rng.integers(0, 4, 40)
    z = F.filter_fields(phi, w)
    np.testing.assert_allclose(z.sum(1), F.readout_logits(phi, w), rtol=1e-12, atol=1e-12)
    brute = np.zeros((5, 4, 4))
    for i in range(40):
        for f in range(5):
            for b in range(4):
                brute[f, y[i], b] += sum(w[p, f, b] * phi[i].reshape(6, 5)[p, f] for p in range(6))
    np.testing.assert_allclose(F.label_field_matrices(phi, y, w), brute, rtol=1e-12, atol=1e-12)


def test_ridge_readout_matches_closed_form_primal_and_dual():
    rng = np.random.default_rng(1)
    c = 3
    for n, d in ((50, 12), (12, 50)):   # primal and dual branches
        phi = rng.normal(size=(n, d // 2, 2))
        y = rng.integers(0, c, n)
        y[:c] = np.arange(c)
        w = F.fit_readout(phi, y, c, method="ridge", l2=0.1).reshape(d, c)
        x = phi.reshape(n, d)
        t = np.full((n, c), -1 / c)
        t[np.arange(n), y] += 1
        np.testing.assert_allclose(w, np.linalg.solve(x.T @ x + 0.1 * np.eye(d), x.T @ t),
                                   atol=1e-9)


def test_ridge_recovers_planted_linear_map_and_respects_mask():
    rng = np.random.default_rng(2)
    n, p, f, c = 200, 2, 4, 3
    y = rng.integers(0, c, n)
    t = np.full((n, c), -1 / c)
    t[np.arange(n), y] += 1
    # features that are an exact linear image of the centred one-hot targets: the targets are
    # then an exact linear function of the features, which (nearly) unregularised ridge recovers.
    phi = (t @ rng.normal(size=(c, p * f))).reshape(n, p, f)
    w = F.fit_readout(phi, y, c, method="ridge", l2=1e-10)
    np.testing.assert_allclose(F.readout_logits(phi, w), t, atol=1e-6)
    # masked ridge: each label's column is ridge on the kept features only, zeros elsewhere
    phi = rng.normal(size=(n, p, f))
    mask = rng.random((f, c)) < 0.5
    mask[:, 0] = True
    w = F.fit_readout(phi, y, c, method="ridge", l2=0.5, mask=mask)
    assert np.all(w[:, ~mask] == 0)
    x = phi.reshape(n, p * f)
    for b in range(c):
        sel = np.broadcast_to(mask[:, b], (p, f)).ravel()
        ref = np.linalg.solve(x[:, sel].T @ x[:, sel] + 0.5 * np.eye(sel.sum()),
                              x[:, sel].T @ t[:, b])
        np.testing.assert_allclose(w.reshape(p * f, c)[sel, b], ref, atol=1e-9)


def test_softmax_readout_recovers_planted_rule():
    rng = np.random.default_rng(3)
    p, f, c = 2, 3, 4
    w_star = rng.normal(size=(p, f, c))

    def sample(n):
        phi = np.abs(rng.normal(size=(n, p, f)))
        return phi, np.argmax(np.einsum("npf,pfb->nb", phi, w_star), 1)

    phi, y = sample(3000)
    w = F.fit_readout(phi, y, c, epochs=60, l2=0.0, learning_rate=0.05, seed=0)
    phi_te, y_te = sample(2000)
    # a deterministic linear rule in d = 6 dimensions, 3000 examples: held-out error of the
    # max-likelihood linear classifier is O(d/n) ≈ 0.2 %; allow 3 %.
    assert np.mean(F.readout_logits(phi_te, w).argmax(1) == y_te) > 0.97
    # the rule is identified up to a common shift of all labels' weights: compare centred
    def centred(a):
        return (a - a.mean(-1, keepdims=True)).ravel()

    cos = centred(w) @ centred(w_star) / np.linalg.norm(centred(w)) / np.linalg.norm(
        centred(w_star))
    assert cos > 0.9
    # minimum-norm gauge: weights sum to zero over labels (predictions are shift-invariant)
    np.testing.assert_allclose(w.sum(-1), 0, atol=1e-12)
    # same seed -> same weights
    np.testing.assert_array_equal(w, F.fit_readout(phi, y, c, epochs=60, l2=0.0,
                                                   learning_rate=0.05, seed=0))


def test_afcc_mask_density_equals_fraction_kept():
    rng = np.random.default_rng(4)
    mats = rng.normal(size=(6, 5, 5)) + 3 * np.eye(5)
    fc = F.analyze_filters(mats, 0.3)
    m = F.afcc_mask(fc)
    expected = np.zeros((6, 5), bool)
    for f_, cs in enumerate(fc.clusters):
        for k in cs:
            expected[f_, list(k)] = True
    np.testing.assert_array_equal(m, expected)
    rm = F.random_mask(m, seed=1)
    assert rm.sum() == m.sum() and not np.array_equal(rm, m)
    np.testing.assert_array_equal(rm, F.random_mask(m, seed=1))
    phi = rng.normal(size=(300, 4, 6))   # generic features: no identically-zero column
    y = rng.integers(0, 5, 300)
    out = F.afcc(phi[:200], y[:200], phi[200:], y[200:], fc, seed=0, epochs=5)
    assert out["afcc_kept"] == pytest.approx(m.mean())
    assert out["afcc_nonzero"] == pytest.approx(m.mean())
    assert out["random_mask_kept"] == pytest.approx(m.mean())
    assert out["random_mask_nonzero"] == pytest.approx(m.mean())
    w = F.fit_readout(phi, y, 5, mask=m, epochs=3)
    assert np.all(w[:, ~m] == 0) and np.all(w[:, m] != 0)


# --------------------------------------------------------------------------- network
CFG = FC.VGGConfig(blocks=((4,), (8,)), image_shape=(8, 8, 1))


@pytest.fixture(scope="module")
def digits():
    return iw.load_digits(n_train=400, n_test=200, seed=0)


def test_tiny_training_reduces_loss_and_is_seeded(digits):
    net = F.train_cnn(digits.x_train, digits.y_train, CFG, epochs=4, batch_size=50,
                      learning_rate=1e-2, seed=0)
    loss = net.history.loss.to_numpy()
    assert loss[-1] < 0.6 * loss[0] and loss[0] < 2.5
    assert np.mean(net.predict(digits.x_test) == digits.y_test) > 0.5  # chance is 0.1
    again = F.train_cnn(digits.x_train, digits.y_train, CFG, epochs=4, batch_size=50,
                        learning_rate=1e-2, seed=0)
    np.testing.assert_array_equal(again.params["dense"][0], net.params["dense"][0])
    # the random control is the trained network's starting point
    rand = F.random_cnn(CFG, seed=0)
    assert not rand.trained and rand.features(digits.x_test[:3], 2).shape == (3, 2, 2, 8)
    df = F.layer_analysis(net, digits.x_train, digits.y_train, digits.x_test, digits.y_test,
                          readout={"epochs": 50})
    assert list(df.layer) == [1, 2] and set(df.network) == {"trained"}
    for col in ("accuracy", "mean_cluster_size", "clusters_per_filter", "noise_per_filter",
                "snr", "afcc_accuracy", "afcc_kept", "random_mask_accuracy"):
        assert col in df
    assert (df.accuracy > 0.5).all()
    np.testing.assert_allclose(df.afcc_kept, df.random_mask_kept)


# --------------------------------------------------------------------------- validation
def test_bad_inputs_raise_before_work(digits):
    net = F.random_cnn(CFG, seed=0)
    args = (digits.x_train, digits.y_train, digits.x_test, digits.y_test)
    for t in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="threshold"):
            F.layer_analysis(net, *args, threshold=t)
        with pytest.raises(ValueError, match="threshold"):
            F.find_clusters(np.eye(3), t)
    for layer, err in ((0, ValueError), (3, ValueError), (2.0, TypeError)):
        with pytest.raises(err, match="layer"):
            F.layer_analysis(net, *args, layers=[layer])
    with pytest.raises(ValueError, match="x_train"):
        F.layer_analysis(net, digits.x_train[:, :10], *args[1:])
    bad = digits.x_test.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="x_test"):
        F.layer_analysis(net, *args[:2], bad, digits.y_test)
    with pytest.raises(ValueError, match="y_train"):
        F.layer_analysis(net, digits.x_train, digits.y_train[:-1], *args[2:])
    with pytest.raises(ValueError, match="y_test"):
        F.layer_analysis(net, *args[:3], digits.y_test + 10)
    with pytest.raises(ValueError, match="snr_definition"):
        F.layer_analysis(net, *args, snr_definition="nope")
    with pytest.raises(ValueError, match="matrix must be square"):
        F.find_clusters(np.ones((2, 3)))
    with pytest.raises(ValueError, match="matrix"):
        F.find_clusters(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="matrices"):
        F.analyze_filters(np.ones((3, 3)))
    with pytest.raises(ValueError, match="features"):
        F.fit_readout(np.full((4, 2, 2), np.nan), np.zeros(4, int), 2)
    with pytest.raises(ValueError, match="mask"):
        F.fit_readout(np.ones((4, 2, 2)), np.zeros(4, int), 2, mask=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="method"):
        F.fit_readout(np.ones((4, 2, 2)), np.zeros(4, int), 2, method="svm")
    with pytest.raises(ValueError, match="weights"):
        F.label_field_matrices(np.ones((4, 2, 2)), np.zeros(4, int), np.ones((3, 2, 2)))
    with pytest.raises(ValueError, match="image_shape"):
        FC.VGGConfig(blocks=((4,), (4,), (4,), (4,)), image_shape=(8, 8, 1))
    with pytest.raises(ValueError, match="blocks"):
        FC.VGGConfig(blocks=((4, 0),))
    with pytest.raises(ValueError, match="epochs"):
        F.train_cnn(digits.x_train, digits.y_train, CFG, epochs=0)
    with pytest.raises(ValueError, match="optimizer"):
        F.train_cnn(digits.x_train, digits.y_train, CFG, optimizer="lbfgs")
