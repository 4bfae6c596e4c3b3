"""Train the report generator on generated radiographs, their region boxes and region
sentences, end to end at the served size (512x512): the RPN's objectness and box losses on
sampled anchors, the box head's region classification and box losses on proposals plus the
true boxes, and the decoder's next-word loss (teacher forcing) on the box-head features of
the true boxes, slightly jittered as a detector would place them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medflow.inference.text import BOS, EOS, Tokenizer, build_vocab, words

from ..common.synthetic import chest_xray_regions
from .model import MAX_WORDS, REGIONS
from .sentences import ABNORMAL, NORMAL

HERE = Path(__file__).resolve().parent
SEED = 19
SIZE = 512
ABNORMAL_RATE = 0.3
RPN_SAMPLES, RPN_POSITIVE, RPN_FG, RPN_BG = 256, 0.5, 0.7, 0.3   # Faster R-CNN's anchor sampling
ROI_FG = 0.5


def region_sample(rng: np.random.Generator, size: int = SIZE):
    """One training example: image [size, size], boxes [R, 4], abnormal flags [R]."""
    abnormal = rng.random(len(REGIONS)) < ABNORMAL_RATE
    image, boxes = chest_xray_regions(rng, abnormal, size)
    return image, boxes, abnormal


def as_tensors(samples, tok: Tokenizer):
    """Samples of ``region_sample`` -> images [n, 1, size, size], true boxes [n, R, 4] and
    each region's target sentence ids [n, R, MAX_WORDS]."""
    import torch
    images = torch.from_numpy(np.stack([s[0] for s in samples])[:, None])
    boxes = torch.from_numpy(np.stack([s[1] for s in samples]))
    targets = torch.tensor([[sentence_ids(tok, (ABNORMAL if a else NORMAL)[r]) for r, a in zip(REGIONS, s[2])]
                            for s in samples])
    return images, boxes, targets


def sentence_ids(tok: Tokenizer, sentence: str) -> list[int]:
    """The target word ids of a sentence: its words, EOS, then EOS up to MAX_WORDS."""
    ids = [tok.index[w] for w in words(sentence)][:MAX_WORDS - 1] + [tok.index[EOS]]
    return ids + [tok.index[EOS]] * (MAX_WORDS - len(ids))


def rpn_labels(iou, generator):
    """Anchor labels for one image from IoU [N, G]: 1 object, 0 background, -1 ignored;
    256 sampled, at most half objects; an anchor that is some box's best match counts."""
    import torch
    best, matched = iou.max(1)
    labels = torch.full_like(best, -1)
    labels[best < RPN_BG] = 0
    labels[best >= RPN_FG] = 1
    labels[(iou == iou.max(0, keepdim=True).values).any(1)] = 1
    for value, limit in ((1, int(RPN_SAMPLES * RPN_POSITIVE)), (0, None)):
        idx = torch.nonzero(labels == value).squeeze(1)
        keep = limit if limit is not None else RPN_SAMPLES - int((labels == 1).sum())
        if len(idx) > keep:
            labels[idx[torch.randperm(len(idx), generator=generator)[keep:]]] = -1
    return labels, matched


def jitter(boxes, generator, amount: float = 0.04):
    """Boxes moved and resized by up to ``amount`` of their size (a detector's placement)."""
    import torch
    wh = torch.cat([boxes[..., 2:] - boxes[..., :2]] * 2, -1)
    noise = (torch.rand(boxes.shape, generator=generator) * 2 - 1) * amount * wh
    return (boxes + noise).clamp(0, 1)


def detection_losses(model, features, gt_boxes, generator):
    """-> (RPN objectness + box loss, box head classification + box loss, jittered true boxes'
    box-head features [B, R, F])."""
    import torch
    from torch.nn import functional as F

    from ..common.detection import ROI_WEIGHTS, box_iou, encode, gather_rows

    anchor_boxes, logits, deltas = model.rpn(features)
    rpn = torch.zeros(())
    for i in range(len(gt_boxes)):
        labels, matched = rpn_labels(box_iou(anchor_boxes, gt_boxes[i]), generator)
        sampled, positive = labels >= 0, labels == 1
        rpn = rpn + F.binary_cross_entropy_with_logits(logits[i][sampled], labels[sampled].float())
        target = encode(anchor_boxes[positive], gt_boxes[i][matched[positive]])
        rpn = rpn + F.smooth_l1_loss(deltas[i][positive], target, beta=1 / 9, reduction="sum") / sampled.sum()
    proposals = model.rpn.proposals(anchor_boxes, logits, deltas)
    true_rois = jitter(gt_boxes, generator)
    rois = torch.cat([proposals, true_rois], 1)
    feat, cls_logits, box_deltas = model.box_head(features, rois)
    best, matched = box_iou(rois, gt_boxes).max(2)                           # [B, K]
    cls_target = torch.where(best >= ROI_FG, matched + 1, torch.zeros_like(matched))
    roi = F.cross_entropy(cls_logits.reshape(-1, cls_logits.shape[-1]), cls_target.reshape(-1))
    positive = cls_target > 0
    chosen = torch.gather(box_deltas, 2, matched[..., None, None].expand(-1, -1, 1, 4)).squeeze(2)
    target = encode(rois, gather_rows(gt_boxes, matched), ROI_WEIGHTS)
    roi = roi + F.smooth_l1_loss(chosen[positive], target[positive], beta=1.0, reduction="sum") / cls_target.numel()
    return rpn / len(gt_boxes), roi, feat[:, proposals.shape[1]:]


def held_out(model, tok: Tokenizer, n: int = 48, seed: int = SEED + 1) -> dict:
    """Detection and sentence quality on generated images the model never saw."""
    import torch

    from ..common.detection import box_iou
    rng = np.random.default_rng(seed)
    images, gt, targets = as_tensors([region_sample(rng) for _ in range(n)], tok)
    with torch.no_grad():
        boxes, words_out, _, scores = model(images)
    iou = torch.diagonal(box_iou(boxes, gt), dim1=1, dim2=2)                 # [n, R]
    return {"mean_iou": round(float(iou.mean()), 4), "detected_at_iou_0_5": round(float((iou >= 0.5).float().mean()), 4),
            "exact_sentences": round(float((words_out == targets).all(-1).float().mean()), 4),
            "mean_detection_score": round(float(scores.mean()), 4)}


def train(out: Path = HERE, steps: int = 1500, batch_size: int = 4, time_budget_s: float = 900.0) -> dict:
    """End to end at 512x512; the shipped weights: 1,500 steps, about 3 minutes on 2 idle cores."""
    import torch
    from torch.nn import functional as F

    from medflow.inference.torch_tools import fit, save_state, seed_everything
    from .model import ReportGenerator

    seed_everything(SEED)
    torch.set_num_threads(2)
    vocab = build_vocab(list(NORMAL.values()) + list(ABNORMAL.values()))
    tok = Tokenizer(vocab, MAX_WORDS + 2)
    bos = tok.index[BOS]
    rng = np.random.default_rng(SEED)
    generator = torch.Generator().manual_seed(SEED)
    model = ReportGenerator(len(vocab), bos)

    class Objective(torch.nn.Module):
        """The three losses of one batch, summed."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, images, gt_boxes, tgt):
            rpn, roi, true_features = detection_losses(self.m, self.m.cnn(images), gt_boxes, generator)
            region = self.m.region_tokens(true_features)
            b, r, d = region.shape
            flat_t = tgt.reshape(b * r, MAX_WORDS)
            inp = torch.cat([torch.full((b * r, 1), bos), flat_t[:, :-1]], 1)
            logits = self.m.logits(region.reshape(b * r, d), inp)[:, 1:]
            words_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat_t.reshape(-1))
            return rpn + roi + words_loss

    def batch(_):
        return as_tensors([region_sample(rng) for _ in range(batch_size)], tok), None

    last = fit(Objective(model), batch, lambda loss, _: loss, steps, lr=2e-3, time_budget_s=time_budget_s)
    quality = held_out(model, tok)
    save_state(model, out / "weights.pt")
    (out / "vocab.json").write_text(json.dumps({"vocab": vocab, "regions": list(REGIONS), "held_out": quality}) + "\n")
    return {"loss": round(last, 4), **quality}


if __name__ == "__main__":
    print(train())
