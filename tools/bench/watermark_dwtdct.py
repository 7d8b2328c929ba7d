"""Baseline half of `cargo xtask bench watermark`: the DWT-DCT watermark of
the `invisible-watermark` package (what Stable Diffusion XL embeds), measured
on the same pictures and the same attacks as our mark.

    watermark_dwtdct.py CLIPS_DIR [--ffmpeg]

CLIPS_DIR holds one folder per clip of 8-bit PNG frames (clean, unmarked),
written by the Rust half. Each frame is marked with a 64-bit payload by
`WatermarkEncoder.encode(..., "dwtDct")`, attacked, and decoded. The scheme has
no detector of its own, so a frame counts as detected when all 64 bits come
back, and a clip when the per-bit majority over its frames gives all 64
bits. Unmarked frames are decoded too: their best bit agreement with the
payload is the false-positive side. Prints one JSON line:
{"attacks": {name: {"frame_detect", "clip_detect", "bit_accuracy"}},
 "psnr_db", "unmarked_max_bits"}.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

PAYLOAD = 0x4746_1ABC_DEF0_1234


def bits_of(v):
    return [(v >> (63 - i)) & 1 for i in range(64)]


def attacks(cv2, np, ffmpeg):
    def jpeg(q):
        def f(img):
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
            return cv2.imdecode(buf, cv2.IMREAD_COLOR)

        return f

    def resize(img):
        h, w = img.shape[:2]
        return cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)

    def crop(img):
        h, w = img.shape[:2]
        dy, dx = h // 20, w // 20
        return img[dy : h - dy, dx : w - dx]

    def bright(f):
        def g(img):
            return np.clip(img.astype(np.float32) * f + 0.5, 0, 255).astype(np.uint8)

        return g

    out = {
        "png8": lambda img: img,
        "jpeg90": jpeg(90),
        "jpeg75": jpeg(75),
        "jpeg50": jpeg(50),
        "resize50": resize,
        "crop10": crop,
        "bright+10": bright(1.1),
        "bright-10": bright(0.9),
    }
    return out


def h264(frames, crf):
    """The clip through libx264 at `crf` and back (BGR uint8 frames)."""
    h, w = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "clip.mp4")
        enc = subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
             "-s", f"{w}x{h}", "-r", "24", "-i", "pipe:0", "-c:v", "libx264",
             "-crf", str(crf), "-pix_fmt", "yuv420p", path],
            input=b"".join(f.tobytes() for f in frames),
            capture_output=True,
        )
        if enc.returncode != 0:
            raise RuntimeError(enc.stderr.decode())
        dec = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "bgr24",
             "pipe:1"],
            capture_output=True,
        )
        import numpy as np

        raw = np.frombuffer(dec.stdout, dtype=np.uint8)
        return list(raw.reshape(-1, h, w, 3))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("clips")
    parser.add_argument("--ffmpeg", action="store_true")
    args = parser.parse_args()
    try:
        import cv2
        import numpy as np
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except ImportError as e:
        print(json.dumps({"error": f"invisible-watermark or opencv missing: {e}"}))
        return 2
    want = bits_of(PAYLOAD)
    enc = WatermarkEncoder()
    enc.set_watermark("bits", want)
    dec = WatermarkDecoder("bits", 64)

    clips = []
    for name in sorted(os.listdir(args.clips)):
        d = os.path.join(args.clips, name)
        frames = [cv2.imread(os.path.join(d, f), cv2.IMREAD_COLOR) for f in sorted(os.listdir(d))]
        clips.append(frames)
    marked = [[enc.encode(f, "dwtDct") for f in clip] for clip in clips]
    psnr = []
    for clip, mclip in zip(clips, marked):
        for a, b in zip(clip, mclip):
            mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
            psnr.append(10 * np.log10(255.0**2 / max(mse, 1e-12)))

    def judge(frames_per_clip):
        frame_hits = frames = 0
        clip_hits = 0
        bit_right = bit_total = 0
        for frames_ in frames_per_clip:
            votes = np.zeros(64)
            for f in frames_:
                try:
                    got = [int(b) for b in dec.decode(f, "dwtDct")]
                except Exception:
                    got = [0] * 64
                right = sum(int(g == w) for g, w in zip(got, want))
                bit_right += right
                bit_total += 64
                frame_hits += int(right == 64)
                frames += 1
                votes += np.array(got)
            majority = [int(v * 2 > len(frames_)) for v in votes]
            clip_hits += int(majority == want)
        return {
            "frame_detect": frame_hits / max(frames, 1),
            "clip_detect": clip_hits / max(len(frames_per_clip), 1),
            "bit_accuracy": bit_right / max(bit_total, 1),
        }

    table = {}
    for name, attack in attacks(cv2, np, args.ffmpeg).items():
        table[name] = judge([[attack(f) for f in clip] for clip in marked])
    if args.ffmpeg:
        for crf in (23, 28):
            table[f"h264_crf{crf}"] = judge([h264(clip, crf) for clip in marked])
    unmarked_best = 0
    for clip in clips:
        for f in clip:
            got = [int(b) for b in dec.decode(f, "dwtDct")]
            unmarked_best = max(unmarked_best, sum(int(g == w) for g, w in zip(got, want)))
    print(
        json.dumps(
            {
                "attacks": table,
                "psnr_db": float(np.median(psnr)),
                "unmarked_max_bits": unmarked_best,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
