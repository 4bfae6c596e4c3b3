"""Region sentences of the generated training reports (no torch)."""

from __future__ import annotations

NORMAL = {"right_lung": "the right lung is clear.", "left_lung": "the left lung is clear.",
          "heart": "heart size is normal.", "mediastinum": "the mediastinum is unremarkable.",
          "right_costophrenic_angle": "the right angle is sharp.", "left_costophrenic_angle": "the left angle is sharp."}
ABNORMAL = {"right_lung": "opacity in the right lung.", "left_lung": "opacity in the left lung.",
            "heart": "the heart is enlarged.", "mediastinum": "the mediastinum is widened.",
            "right_costophrenic_angle": "blunted right angle, effusion.", "left_costophrenic_angle": "blunted left angle, effusion."}
