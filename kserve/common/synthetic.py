"""Generated images for demo training and demo inputs (numpy only): chest radiographs with
findings drawn in, tongue photographs with colour/coating/cracks, and echocardiogram cine
clips of a beating left ventricle. Shapes that carry the labels, nothing clinical."""

from __future__ import annotations

import numpy as np

CXR_LABELS = ("atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion",
              "pneumonia", "pneumothorax", "no_finding")


def _grid(size: int):
    y, x = np.mgrid[0:size, 0:size] / size
    return y, x


def _ellipse(y, x, cy, cx, ry, rx):
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1


LUNG_CENTRES = (0.3, 0.7)   # image x of the right lung (seen on the left) and the left lung


def _chest(rng: np.random.Generator, y, x, heart_r: float, mediastinum_half_width: float = 0.05):
    """Body, lungs, heart and mediastinum of a radiograph on the grid (y, x); -> (image, lung masks)."""
    img = 0.15 + 0.05 * rng.random(y.shape)
    img[_ellipse(y, x, 0.55, 0.5, 0.45, 0.42)] += 0.45                     # body
    lungs = [_ellipse(y, x, 0.5, cx, 0.3, 0.14) for cx in LUNG_CENTRES]
    img[lungs[0] | lungs[1]] -= 0.35
    img[_ellipse(y, x, 0.62, 0.52, heart_r, heart_r * 1.2)] += 0.3
    img[(np.abs(x - 0.5) < mediastinum_half_width) & (y > 0.1) & (y < 0.5)] += 0.25   # above the heart
    return img, lungs


def chest_xray(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """A grey chest radiograph [size, size] in 0..1 showing the findings set in ``labels``."""
    y, x = _grid(size)
    img, (right, left) = _chest(rng, y, x, 0.17 if labels[1] else 0.11)
    lungs = right | left
    if labels[0]:
        img[(np.abs(y - 0.6) < 0.02) & lungs & (x < 0.5)] += 0.4          # plate-like band
    if labels[2] or labels[5]:
        cy, cx = rng.uniform(0.4, 0.65), rng.choice([0.3, 0.7])
        img[_ellipse(y, x, cy, cx, 0.07, 0.06) & lungs] += 0.45 if labels[2] else 0.3
    if labels[3]:
        img[lungs] += (0.18 * np.exp(-((x - 0.5) / 0.25) ** 2))[lungs]    # hazy perihilar
    if labels[4]:
        img[lungs & (y > 0.68)] += 0.5                                        # fluid at the base
    if labels[6]:
        img[lungs & (x > 0.78)] = 0.02                                        # no lung markings
    return np.clip(img + 0.03 * rng.standard_normal((size, size)), 0, 1).astype(np.float32)


CXR_REGIONS = ("right_lung", "left_lung", "heart", "mediastinum", "right_costophrenic_angle",
               "left_costophrenic_angle")


def chest_xray_regions(rng: np.random.Generator, abnormal: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A radiograph [size, size] whose anatomy is shifted and scaled at random, with each of
    ``CXR_REGIONS`` drawn abnormal where ``abnormal`` says (lung opacity, enlarged heart,
    widened mediastinum, blunted angle with fluid), and the regions' boxes [6, 4] (x0, y0,
    x1, y1 as fractions of the image): the report generator's detection targets."""
    scale, (dy, dx) = rng.uniform(0.88, 1.08), rng.uniform(-0.06, 0.06, 2)
    y, x = _grid(size)
    y, x = (y - 0.5 - dy) / scale + 0.5, (x - 0.5 - dx) / scale + 0.5       # image -> anatomy coordinates
    heart_r = 0.16 if abnormal[2] else 0.11
    half_width = 0.09 if abnormal[3] else 0.05
    img, lungs = _chest(rng, y, x, heart_r, half_width)
    for side, cx in enumerate(LUNG_CENTRES):
        if abnormal[side]:
            img[_ellipse(y, x, rng.uniform(0.35, 0.6), cx, 0.08, 0.06) & lungs[side]] += 0.45
        if abnormal[4 + side]:
            img[lungs[side] & (y > 0.66)] += 0.5                              # fluid fills the angle
    boxes = np.array([
        (0.16, 0.2, 0.44, 0.8), (0.56, 0.2, 0.84, 0.8),
        (0.52 - 1.2 * heart_r, 0.62 - heart_r, 0.52 + 1.2 * heart_r, 0.62 + heart_r),
        (0.5 - half_width, 0.1, 0.5 + half_width, 0.5),
        (0.16, 0.64, 0.31, 0.8), (0.69, 0.64, 0.84, 0.8)])
    boxes = np.clip((boxes - 0.5) * scale + 0.5 + np.array([dx, dy, dx, dy]), 0, 1).astype(np.float32)
    return np.clip(img + 0.03 * rng.standard_normal((size, size)), 0, 1).astype(np.float32), boxes


def cxr_labels(rng: np.random.Generator) -> np.ndarray:
    labels = (rng.random(len(CXR_LABELS)) < 0.2).astype(np.float32)
    labels[5] = labels[5] if labels[2] == 0 else 0.0
    labels[-1] = float(labels[:-1].sum() == 0)
    return labels


INDICATIONS = {
    0: "post-operative shortness of breath", 1: "ankle swelling and breathlessness on exertion",
    2: "productive cough", 3: "orthopnoea, known heart failure", 4: "dull base on percussion",
    5: "fever and productive cough", 6: "sudden pleuritic chest pain", 7: "routine pre-operative check",
}


def indication(rng: np.random.Generator, labels: np.ndarray) -> str:
    present = [i for i, v in enumerate(labels) if v]
    if rng.random() < 0.3 or not present:
        return "chest pain, rule out pathology"
    return INDICATIONS[int(rng.choice(present))]


TONGUE_ATTRIBUTES = ("red_body", "pale_body", "yellow_coating", "white_coating", "thick_coating",
                     "cracks", "teeth_marks", "dry")
TONGUE_SYNDROMES = ("balanced", "heat", "cold", "damp", "qi_deficiency", "yin_deficiency")
# which attributes each syndrome shows most often
_SYNDROME_ATTRS = {0: (), 1: (0, 2, 7), 2: (1, 3), 3: (4, 2, 6), 4: (1, 6), 5: (0, 5, 7)}
TONGUE_WORDS = {0: "red tongue", 1: "pale tongue", 2: "yellow coating", 3: "white coating", 4: "thick greasy coating",
                5: "cracked surface", 6: "tooth marks on the edges", 7: "dry mouth"}


def tongue(rng: np.random.Generator, syndrome: int, size: int) -> tuple[np.ndarray, np.ndarray, str]:
    """An RGB tongue photograph [size, size, 3], its attribute vector and a description."""
    attrs = np.zeros(len(TONGUE_ATTRIBUTES), np.float32)
    for a in _SYNDROME_ATTRS[syndrome]:
        attrs[a] = float(rng.random() < 0.85)
    attrs[rng.random(len(attrs)) < 0.05] = 1.0
    y, x = _grid(size)
    img = np.ones((size, size, 3), np.float32) * np.array([0.35, 0.25, 0.22])  # mouth
    body = _ellipse(y, x, 0.55, 0.5, 0.38, 0.3)
    colour = np.array([0.85, 0.45, 0.45]) if not attrs[1] else np.array([0.9, 0.7, 0.7])
    if attrs[0]:
        colour = np.array([0.9, 0.25, 0.25])
    img[body] = colour
    coat = _ellipse(y, x, 0.5, 0.5, 0.22 if attrs[4] else 0.12, 0.16 if attrs[4] else 0.09)
    if attrs[2]:
        img[coat] = np.array([0.85, 0.75, 0.3])
    elif attrs[3]:
        img[coat] = np.array([0.92, 0.92, 0.88])
    if attrs[5]:
        img[body & (np.abs(x - 0.5) < 0.01)] *= 0.5
    if attrs[6]:
        img[body & ~_ellipse(y, x, 0.55, 0.5, 0.36, 0.27) & (np.sin(y * 80) > 0)] *= 0.6
    img = np.clip(img + 0.03 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)
    said = [TONGUE_WORDS[i] for i, v in enumerate(attrs) if v and rng.random() < 0.7]
    return img, attrs, ("patient reports " + ", ".join(said)) if said else "no complaints"


def echo_clip(rng: np.random.Generator, frames: int, size: int, points: int) -> tuple[np.ndarray, float, np.ndarray]:
    """A cine clip [frames, size, size] of a left ventricle beating once, its ejection
    fraction (%) and its end-diastolic contour (``points`` x (x, y) in 0..1)."""
    ef = rng.uniform(20, 75)
    # volume ~ area^1.5: end-systolic radius scale so (EDV-ESV)/EDV = ef
    scale_es = (1 - ef / 100) ** (1 / 3)
    cy, cx = rng.uniform(0.45, 0.55, 2)
    ry, rx = rng.uniform(0.25, 0.32), rng.uniform(0.13, 0.18)
    y, x = _grid(size)
    clip = np.empty((frames, size, size), np.float32)
    phase0 = rng.uniform(0, 0.3)
    for t in range(frames):
        s = 1 - (1 - scale_es) * 0.5 * (1 - np.cos(2 * np.pi * (t / frames + phase0)))
        img = 0.1 + 0.05 * rng.random((size, size))
        img[_ellipse(y, x, cy, cx, ry * s + 0.04, rx * s + 0.04)] = 0.8  # myocardium
        img[_ellipse(y, x, cy, cx, ry * s, rx * s)] = 0.15                 # blood pool
        clip[t] = np.clip(img + 0.04 * rng.standard_normal((size, size)), 0, 1)
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    contour = np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], 1).astype(np.float32)
    return clip, float(ef), contour
