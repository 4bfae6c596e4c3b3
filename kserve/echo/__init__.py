"""Echocardiogram: R3D video encoder of a cine clip, ejection-fraction regression and
left-ventricle contour keypoints from a graph convolutional head."""
