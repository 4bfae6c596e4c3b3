"""The Faster R-CNN pieces of the report generator: box coding, IoU, matrix NMS, RoI Align
and the region proposal network keep their published meaning."""

from __future__ import annotations

import numpy as np
import pytest

from medflow.inference.catalog import PACKAGE, _mount

torch = pytest.importorskip("torch", reason="PyTorch comes with the train extra (the test command installs it)")


@pytest.fixture(scope="module")
def det():
    import importlib
    _mount()
    return importlib.import_module(f"{PACKAGE}.common.detection")


def test_decoding_the_encoded_deltas_gives_the_target_box_back(det):
    ref = torch.tensor([[0.1, 0.2, 0.4, 0.6], [0.5, 0.5, 0.6, 0.9]])
    target = torch.tensor([[0.15, 0.1, 0.5, 0.7], [0.45, 0.55, 0.7, 0.8]])
    for weights in (det.RPN_WEIGHTS, det.ROI_WEIGHTS):
        assert torch.allclose(det.decode(ref, det.encode(ref, target, weights), weights), target, atol=1e-6)


def test_decoded_boxes_stay_inside_the_image_however_large_the_deltas(det):
    boxes = det.decode(torch.tensor([[0.4, 0.4, 0.6, 0.6]]), torch.tensor([[5.0, -5.0, 50.0, 50.0]]))
    assert float(boxes.min()) >= 0 and float(boxes.max()) <= 1


def test_iou_of_known_boxes(det):
    a = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    b = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.25, 0.0, 0.75, 0.5], [0.6, 0.6, 1.0, 1.0]])
    np.testing.assert_allclose(det.box_iou(a, b).numpy(), [[1.0, 1 / 3, 0.0]], atol=1e-6)


def test_matrix_nms_drops_a_weaker_overlapping_box_and_keeps_distinct_ones(det):
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.5], [0.11, 0.1, 0.51, 0.5], [0.6, 0.6, 0.9, 0.9]]])
    assert det.matrix_nms(boxes, 0.7).tolist() == [[True, False, True]]
    assert det.matrix_nms(boxes, 0.99).tolist() == [[True, True, True]]


def test_anchors_are_centred_on_feature_cells_with_the_asked_areas_and_ratios(det):
    a = det.anchors(2, 4, sizes=(0.2,), ratios=(0.5, 2.0))
    assert a.shape == (2 * 4 * 2, 4)
    w, h = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    np.testing.assert_allclose((w * h).numpy(), 0.04, rtol=1e-5)
    np.testing.assert_allclose((h / w).numpy()[:2], [0.5, 2.0], rtol=1e-5)
    centre = (a[:, :2] + a[:, 2:]) / 2
    np.testing.assert_allclose(centre[0].numpy(), [0.125, 0.25], atol=1e-6)       # first cell, row-major
    np.testing.assert_allclose(centre[2].numpy(), [0.375, 0.25], atol=1e-6)       # next cell to the right


def test_roi_align_samples_the_feature_map_inside_each_box(det):
    h = w = 16
    ramp = torch.linspace(0.5 / w, 1 - 0.5 / w, w).expand(h, w)                  # value = x of the pixel centre
    features = torch.stack([ramp, ramp.t()]).unsqueeze(0)                      # channel 0: x, channel 1: y
    boxes = torch.tensor([[[0.25, 0.5, 0.75, 1.0], [0.0, 0.0, 0.125, 0.125]]])
    pooled = det.roi_align(features, boxes, size=4, sampling=2)               # [1, 2, 2, 4, 4]
    assert pooled.shape == (1, 2, 2, 4, 4)
    bins = 0.25 + (np.arange(4) + 0.5) / 4 * 0.5                              # bin centres of box 0 along x
    np.testing.assert_allclose(pooled[0, 0, 0, 0].numpy(), bins, atol=1e-5)  # x grows along the bins
    np.testing.assert_allclose(pooled[0, 0, 1, :, 0].numpy(), 0.5 + (np.arange(4) + 0.5) / 8, atol=1e-5)
    assert float(pooled[0, 1].max()) <= 0.125                                 # the corner box reads the corner


def test_the_proposal_network_gives_a_fixed_number_of_boxes_inside_the_image(det):
    torch.manual_seed(0)
    rpn = det.RegionProposalNetwork(8, pre_nms=50, post_nms=12)
    anchors, logits, deltas = rpn(torch.randn(2, 8, 8, 8))
    assert anchors.shape == (8 * 8 * 9, 4) and logits.shape == (2, 8 * 8 * 9) and deltas.shape == (2, 8 * 8 * 9, 4)
    proposals = rpn.proposals(anchors, logits, deltas)
    assert proposals.shape == (2, 12, 4)
    assert float(proposals.min()) >= 0 and float(proposals.max()) <= 1
    assert bool((proposals[..., 2:] >= proposals[..., :2]).all())


def test_roi_align_equals_bilinear_sampling_of_each_bin_even_at_the_edges(det):
    """The matrix form against grid_sample (bilinear, border) at the same sample points."""
    torch.manual_seed(1)
    features = torch.randn(2, 3, 10, 12)
    corner = torch.rand(2, 5, 2) * 0.8
    boxes = torch.cat([corner - 0.1, corner + torch.rand(2, 5, 2) * 0.4], -1).clamp(0, 1)
    n = 3 * 2
    steps = (torch.arange(n) + 0.5) / n
    x = boxes[..., 0:1] + steps * (boxes[..., 2:3] - boxes[..., 0:1])
    y = boxes[..., 1:2] + steps * (boxes[..., 3:4] - boxes[..., 1:2])
    grid = torch.stack([x.unsqueeze(2).expand(-1, -1, n, -1), y.unsqueeze(3).expand(-1, -1, -1, n)], -1)
    sampled = torch.nn.functional.grid_sample(features, grid.reshape(2, 5 * n, n, 2) * 2 - 1, mode="bilinear",
                                              padding_mode="border", align_corners=False)
    expected = sampled.reshape(2, 3, 5, 3, 2, 3, 2).mean((4, 6)).permute(0, 2, 1, 3, 4)
    torch.testing.assert_close(det.roi_align(features, boxes, size=3, sampling=2), expected, atol=1e-5, rtol=1e-5)
