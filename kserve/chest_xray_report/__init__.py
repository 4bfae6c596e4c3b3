"""Chest X-ray report generation: Faster R-CNN finds a fixed set of anatomical regions (RPN
proposals, a box head keeping the best box per region), a GPT-2-style decoder writes one
sentence per region from its box feature; regions with boxes, detection scores, findings
and confidence, and the whole report."""
