"""Test-time augmentation: left-right flips and several input sizes, merged before one NMS.

What it does, exactly. For each scale s (default 1, 0.75, 1.25) the network input size is
(s*width, s*height) rounded to the nearest multiple of the network's stride (32 for the YOLOs;
darknet's resize_network accepts any such size). The image is resized (or letterboxed) to it as
`detector test` does; with flip=True the prepared input is also mirrored left-right, and both
go through the network as one batch. Every pass is decoded exactly as a plain run would
(objectness and class gating at thresh), a mirrored pass has its box centres mirrored back
(x -> 1 - x, in network coordinates, before the letterbox correction), and the candidates of
all passes are concatenated (scale by scale, plain before mirrored) and go through a single
darknet NMS of the cfg's kind. So each output box is one pass's box, never an average; the
plain scale-1 candidates are among the inputs of that NMS, so every plain detection is either
kept or suppressed by an overlapping box of the same class with a higher score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DarknetError


@dataclass(frozen=True)
class TTA:
    """Flip and multi-scale test-time augmentation (used by Detector(tta=...), `--tta`)."""

    scales: tuple[float, ...] = (1.0, 0.75, 1.25)
    flip: bool = True

    def sizes(self, det) -> list[tuple[int, int]]:
        """The network input sizes (w, h), one per distinct scale, in order."""
        net = det.network
        shapes = [net.shapes[i] for i in net.heads]  # (c, h, w) at the cfg's size
        stride_w = max(net.width // s[2] for s in shapes)
        stride_h = max(net.height // s[1] for s in shapes)
        out: list[tuple[int, int]] = []
        for s in self.scales:
            if not s > 0:
                raise DarknetError(f"TTA scale {s}: must be > 0")
            w = max(stride_w, int(round(net.width * s / stride_w)) * stride_w)
            h = max(stride_h, int(round(net.height * s / stride_h)) * stride_h)
            if (w, h) not in out:
                net.infer_shapes(h, w)  # raises DarknetError naming the layer that does not fit
                out.append((w, h))
        return out

    def prepare(self, det, image_bgr: np.ndarray) -> list[np.ndarray]:
        """Per size a (P, 3, h, w) batch: the prepared image, then its mirror if flip."""
        batches = []
        for w, h in self.sizes(det):
            x = det.network.prepare_image(image_bgr, w, h, det.letterbox)
            batches.append(np.stack([x, x[:, :, ::-1]]) if self.flip else x[None])
        return batches

    def passes(self, det, batches: list[np.ndarray], im_w: int, im_h: int) -> list[tuple]:
        """Per pass (w, h, flipped, boxes, objectness, probs), boxes relative to the image."""
        out = []
        for batch in batches:
            h, w = batch.shape[2:]
            maps = det.forward(batch)
            for b in range(len(batch)):
                flipped = b == 1
                cand = det.candidates([m[b] for m in maps], w, h, im_w, im_h, flipped=flipped)
                out.append((w, h, flipped, *cand))
        return out

    def detect_prepared(self, det, batches: list[np.ndarray], im_w: int, im_h: int) -> list:
        """All passes' candidates merged, then one NMS: the TTA detections of one image."""
        passes = self.passes(det, batches, im_w, im_h)
        boxes = np.concatenate([p[3] for p in passes])
        objs = np.concatenate([p[4] for p in passes])
        probs = np.concatenate([p[5] for p in passes])
        return det.finish(boxes, objs, probs, im_w, im_h)
