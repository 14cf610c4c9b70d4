"""Targets and weights: hand-computed cases and a brute-force clipped-window oracle."""
import numpy as np
import pytest

from connectomics.data.targets import (binary_ratio_weight, build_targets, build_weights, contact_weight, foreground,
                                       instance_contour, outline_weight, smooth_labels, widen_border)


def _oracle(label, half_width, rule):
    """Per slice, per voxel: rule(values of the (2h+1)^2 window clipped to the slice)."""
    out = np.zeros(label.shape, bool)
    for z, y, x in np.ndindex(*label.shape):
        window = label[z, max(y - half_width, 0):y + half_width + 1, max(x - half_width, 0):x + half_width + 1]
        out[z, y, x] = rule(np.unique(window))
    return out


def _band(ids):
    return ids.max() > 0 and len(ids) > 1


def _contact(ids):
    return np.count_nonzero(ids) > 1


def test_foreground():
    label = np.array([[[0, 3], [7, 0]]], np.uint32)
    out = foreground(label)
    assert out.shape == (1, 1, 2, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0], [[0, 1], [1, 0]])


def test_contour_two_squares_by_hand():
    label = np.zeros((1, 6, 6), np.uint16)
    label[0, 1:3, 1:3] = 1
    label[0, 4:6, 4:6] = 2
    expected = np.array([
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1],
        [0, 0, 0, 1, 1, 1],
        [0, 0, 0, 1, 1, 0],  # the corner voxel's clipped window is uniform: no border at the slice edge
    ], np.float32)
    out = instance_contour(label, half_width=1, include_background=True)
    assert out.shape == (1, 1, 6, 6) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, 0], expected)
    contacts = np.zeros((6, 6), np.float32)
    contacts[3, 3] = 1  # the only window that sees both squares (diagonal neighbours)
    np.testing.assert_array_equal(instance_contour(label, 1, include_background=False)[0, 0], contacts)
    assert not instance_contour(label, 0, include_background=True).any()


def test_contour_rows_by_hand():
    row = np.array([[[0, 1, 1, 2, 2, 0]]], np.uint32)
    np.testing.assert_array_equal(instance_contour(row, 1, True)[0, 0, 0], [1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(instance_contour(row, 1, False)[0, 0, 0], [0, 0, 1, 1, 0, 0])
    # S = 2: a band of 2 voxels on both sides of each border, the interior voxel 5 stays 0
    row = np.array([[[0, 0, 0, 3, 3, 3, 3, 3, 0, 0]]], np.uint32)
    np.testing.assert_array_equal(instance_contour(row, 2, True)[0, 0, 0], [0, 1, 1, 1, 1, 0, 1, 1, 1, 1])


def test_contour_is_per_slice():
    label = np.zeros((3, 5, 5), np.uint32)
    label[1, 1:4, 1:4] = 9
    out = instance_contour(label, 1)[0]
    assert not out[0].any() and not out[2].any() and out[1].any()


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64, np.int32])
@pytest.mark.parametrize("half_width", [1, 2])
def test_contour_and_widen_match_oracle(dtype, half_width):
    rng = np.random.default_rng(half_width)
    label = rng.integers(0, 4, size=(2, 9, 11)).astype(dtype)
    label[0, :4, :4] = min(np.iinfo(dtype).max, 2**63 - 1)  # the largest supported id
    for background, rule in ((True, _band), (False, _contact)):
        out = instance_contour(label, half_width, include_background=background)[0]
        np.testing.assert_array_equal(out.astype(bool), _oracle(label, half_width, rule))
    widened = widen_border(label, half_width)
    assert widened.dtype == label.dtype
    np.testing.assert_array_equal(widened, np.where(_oracle(label, half_width, _contact), 0, label))


def test_widen_border_by_hand():
    row = np.array([[[1, 1, 1, 2, 2, 2]]], np.uint32)
    np.testing.assert_array_equal(widen_border(row, 1)[0, 0], [1, 1, 0, 0, 2, 2])
    np.testing.assert_array_equal(widen_border(row, 2)[0, 0], [1, 0, 0, 0, 0, 2])
    touching = np.array([[[1, 1, 0], [1, 2, 2], [0, 2, 2]]], np.uint16)
    before = touching.copy()
    np.testing.assert_array_equal(widen_border(touching, 1)[0], [[0, 0, 0], [0, 0, 0], [0, 0, 2]])
    np.testing.assert_array_equal(touching, before)  # the input is not modified
    background_only = np.array([[[0, 5, 5, 0, 0]]], np.uint32)
    np.testing.assert_array_equal(widen_border(background_only, 1), background_only)
    assert widen_border(row, 0) is not row


def test_binary_ratio_weight_by_hand():
    np.testing.assert_allclose(binary_ratio_weight(np.array([1, 0, 0, 0], np.float32)), [3, 1, 1, 1])
    np.testing.assert_allclose(binary_ratio_weight(np.array([1, 1, 1, 0], np.float32)), [1, 1, 1, 3])
    rare = np.zeros(100, np.float32)
    rare[0] = 1  # f = 0.01 is clipped to 0.05: weight 19
    assert binary_ratio_weight(rare)[0] == pytest.approx(19.0)
    np.testing.assert_array_equal(binary_ratio_weight(np.zeros((1, 2, 3, 3), np.float32)), np.ones((1, 2, 3, 3)))
    np.testing.assert_array_equal(binary_ratio_weight(np.ones((1, 2, 3, 3), np.float32)), np.ones((1, 2, 3, 3)))
    assert binary_ratio_weight(np.array([1, 0], np.float32)).dtype == np.float32


def test_smooth_labels():
    out = smooth_labels(np.array([0, 1, 0.5], np.float32), 0.1)
    np.testing.assert_allclose(out, [0.1, 0.9, 0.5])
    with pytest.raises(ValueError, match="LABEL_SMOOTH"):
        smooth_labels(np.zeros(2), 0.7)


def test_build_targets_and_weights():
    label = np.zeros((2, 8, 8), np.uint32)
    label[:, 2:6, 2:6] = 4
    fg, contour, contact = build_targets(label, ["0", "4-2-1", "4-1-0"])
    np.testing.assert_array_equal(fg, foreground(label))
    np.testing.assert_array_equal(contour, instance_contour(label, 2, True))
    assert not contact.any()
    np.testing.assert_array_equal(build_targets(label, ["4"])[0], contour)  # defaults S=2, B=1
    weights = build_weights([fg, contour], [["1"], ["0", "1"]])
    np.testing.assert_array_equal(weights[0], binary_ratio_weight(fg))
    assert weights[1] is None
    assert build_weights([fg], ["1"])[0].shape == fg.shape


@pytest.mark.parametrize("code", ["5", "4-2-7", "4-x", "0-1", ""])
def test_unknown_target_code(code):
    with pytest.raises(ValueError, match="valid codes: '0'.*'4-S-B'"):
        build_targets(np.zeros((1, 4, 4), np.uint32), [code])


def test_bad_inputs():
    with pytest.raises(ValueError, match="valid codes"):
        build_weights([np.zeros((1, 1, 2, 2), np.float32)], [["5"]])
    with pytest.raises(ValueError, match="one list of weight codes per target"):
        build_weights([np.zeros((1, 1, 2, 2), np.float32)], [["1"], ["1"]])
    with pytest.raises(TypeError, match="integer"):
        foreground(np.zeros((1, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"\(Z, Y, X\)"):
        instance_contour(np.zeros((2, 2), np.uint32))
    with pytest.raises(ValueError, match="negative"):
        foreground(np.full((1, 2, 2), -1, np.int32))
    with pytest.raises(ValueError, match="relabel"):
        foreground(np.full((1, 2, 2), 2**63, np.uint64))
    with pytest.raises(ValueError, match="half_width"):
        widen_border(np.zeros((1, 2, 2), np.uint32), -1)


def test_widen_border_slabs_match_per_slice():
    label = np.random.default_rng(3).integers(0, 3, size=(19, 5, 6)).astype(np.uint32)
    per_slice = np.concatenate([widen_border(label[z:z + 1], 1) for z in range(19)])
    np.testing.assert_array_equal(widen_border(label, 1), per_slice)


def test_contact_weight_marks_only_near_touching_instances():
    label = np.zeros((1, 12, 24), np.uint32)
    label[:, 2:10, 1:5] = 1  # alone: 7 voxels from instance 2
    label[:, 2:10, 12:16] = 2  # 2 and 3 separated by a 2-voxel gap (an eroded touching face)
    label[:, 2:10, 18:22] = 3
    w = contact_weight(label, gain=4.0, half_width=3)
    assert w.shape == (1,) + label.shape and w.dtype == np.float32
    assert set(np.unique(w)) == {1.0, 5.0}
    assert (w[0, 0, :, :11] == 1).all()  # instance 1 has no neighbour within reach
    assert (w[0, 0, 5, 15:19] == 5).all() and w[0, 0, 5, 14] == 1 and w[0, 0, 5, 19] == 1  # gap + 1 voxel
    weights = build_weights(build_targets(label, ["0", "4-2-1"]), [["0"], ["2-4"]], label)
    contour = build_targets(label, ["4-2-1"])[0]
    np.testing.assert_allclose(weights[1], binary_ratio_weight(contour) * w)
    with pytest.raises(ValueError, match="needs the instance label"):
        build_weights([contour], [["2"]])
    with pytest.raises(ValueError, match="valid codes"):
        build_weights([contour], [["2-x"]], label)


def test_outline_weight_marks_a_band_on_both_sides_of_every_outline():
    label = np.zeros((2, 12, 12), np.uint32)
    label[:, 3:9, 3:9] = 7
    w = outline_weight(label, gain=3.0)  # half_width 1: the outline voxel on each side
    assert w.shape == (1,) + label.shape and w.dtype == np.float32
    assert set(np.unique(w)) == {1.0, 4.0}
    row = w[0, 1, 5]
    np.testing.assert_array_equal(row, [1, 1, 4, 4, 1, 1, 1, 1, 4, 4, 1, 1])  # x 2|3 and 8|9 borders
    assert w[0, 0, 5, 5] == 1 and w[0, 0, 0, 0] == 1  # deep inside and far outside
    weights = build_weights(build_targets(label, ["0", "4-2-1"]), [["3-3"], ["1"]], label)
    np.testing.assert_array_equal(weights[0], w)  # no class ratio on top
    np.testing.assert_array_equal(build_weights([weights[0]], [["3"]], label)[0], outline_weight(label, 4.0))
    with pytest.raises(ValueError, match="needs the instance label"):
        build_weights([weights[0]], [["3-2"]])
    with pytest.raises(ValueError, match="valid codes"):
        build_weights([weights[0]], [["3-x"]], label)
