"""Chest X-ray report generation: features of a fixed set of anatomical regions, a GPT-2-style
decoder writing one sentence per region; regions with boxes, findings and confidence, and
the whole report."""
