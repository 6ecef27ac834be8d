"""Perception: video/bag input, segmentation, depth, hands, object meshes and 6D tracking, scene alignment, pose metrics."""
