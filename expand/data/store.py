"""How the frame cache stores a video's frames, and how a clip gets them back.

Every store is written from a stream of frames (one frame in memory at a
time) and read back clip by clip through the same small interface, a
:class:`FrameSource`: ``len()`` and ``read(indices)``. Three formats, chosen by
measurement (``benchmarks/data_scale.py``, README "Data at scale"):

* ``h264`` (the default): the frames re-encoded (x264, CRF 23, a keyframe
  every 16 frames) at the cache resolution: 1.8x the bytes of a CRF-23
  Kinetics-like source, and a clip decodes from the keyframe before it to
  its last frame: 6x (X3D-M) to 12x (X3D-XS) the clips per core of a full
  decode. GOP 4 and 8 were measured too: larger files and slower (keyframes
  cost more to decode than the frames they save).
* ``jpeg``: each frame a JPEG in one file per video, with an index at its
  end. A clip reads and decodes only its own frames, whatever the stride:
  the fastest read (24x naive for X3D-M), at 20-30x the source's bytes.
* ``npy``: raw uint8 frames, memory-mapped: the fastest warm read and 10-30x
  the source's bytes; for small datasets that fit in the page cache.
"""

from __future__ import annotations

import io
import json
import os
import struct
from typing import Iterable, Iterator, Optional, Protocol, Sequence

import numpy as np

FORMATS = ("jpeg", "h264", "npy")
SUFFIX = {"jpeg": ".jpgs", "h264": ".mp4", "npy": ".npy"}
_MAGIC = b"X3DJPGS1"
_FOOTER = struct.Struct("<8sQ")  # magic, offset of the JSON index


class FrameSource(Protocol):
    """A video's frames at the dataset's fps: what a clip is sampled from."""

    def __len__(self) -> int: ...
    def read(self, indices: Sequence[int]) -> np.ndarray: ...


class ArrayFrames:
    """Frames already in memory (or memory-mapped): uint8 T x H x W x 3."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def read(self, indices: Sequence[int]) -> np.ndarray:
        return np.ascontiguousarray(self.frames[np.asarray(indices)])


# ---------------------------------------------------------------- jpeg
def write_jpeg(fh, frames: Iterable[np.ndarray], fps: float, quality: int = 90) -> int:
    """JPEG frames to an open binary file, then their index; returns the frames written."""
    from PIL import Image

    offsets, sizes, shape = [], [], None
    for image in frames:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=quality)
        data = buf.getvalue()
        offsets.append(fh.tell())
        sizes.append(len(data))
        fh.write(data)
        shape = image.shape
    if shape is None:
        raise ValueError("no frames to store")
    index_at = fh.tell()
    fh.write(json.dumps({"offsets": offsets, "sizes": sizes, "height": shape[0], "width": shape[1],
                         "fps": fps, "quality": quality}).encode())
    fh.write(_FOOTER.pack(_MAGIC, index_at))
    return len(offsets)


class JpegFrames:
    """A ``.jpgs`` file: reads only the requested frames' bytes (``os.pread``), decodes them with Pillow."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(self.fd).st_size
            magic, index_at = _FOOTER.unpack(os.pread(self.fd, _FOOTER.size, size - _FOOTER.size))
            if magic != _MAGIC:
                raise ValueError(f"{path}: not a frame store")
            index = json.loads(os.pread(self.fd, size - _FOOTER.size - index_at, index_at))
        except BaseException:
            os.close(self.fd)
            raise
        self.offsets = np.asarray(index["offsets"], dtype=np.int64)
        self.sizes = np.asarray(index["sizes"], dtype=np.int64)
        self.shape = (int(index["height"]), int(index["width"]), 3)

    def __len__(self) -> int:
        return len(self.offsets)

    def read(self, indices: Sequence[int]) -> np.ndarray:
        from PIL import Image

        out = np.empty((len(indices), *self.shape), dtype=np.uint8)
        decoded: dict[int, int] = {}
        for j, i in enumerate(indices):
            i = int(i)
            if i in decoded:
                out[j] = out[decoded[i]]
                continue
            data = os.pread(self.fd, int(self.sizes[i]), int(self.offsets[i]))
            with Image.open(io.BytesIO(data)) as im:
                out[j] = np.asarray(im.convert("RGB"))
            decoded[i] = j
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __getstate__(self) -> dict:  # a DataLoader worker opens its own descriptor
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])


# ---------------------------------------------------------------- h264
def write_h264(path: str, frames: Iterator[np.ndarray], fps: float, gop: int = 16, crf: int = 23) -> int:
    """Re-encode frames (x264, a keyframe every ``gop`` frames) at their size; returns the frames written.

    A cache is built once per dataset and may be terabytes: x264's assembly
    (half the encoding time of its C code) is worth bytes that can differ
    between two builds on some CPUs (each build is a valid encode at the same CRF).
    """
    from expand.data.synth import write_video_stream

    return write_video_stream(path, _encodable(frames), fps, gop=gop, crf=crf, exact=False)


def _encodable(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The frames, after a check that 4:2:0 can hold them: a video 1 pixel wide is that video's
    error (skipped, as an undecodable one is), not an exception that ends a search."""
    from expand.data.video import VideoError

    for k, img in enumerate(frames):
        if k == 0 and min(img.shape[:2]) < 2:
            raise VideoError(f"frames of {img.shape[1]}x{img.shape[0]} pixels are too small for the h264 "
                             "frame cache (4:2:0 needs 2x2); data.cache_format: jpeg stores them")
        yield img


class VideoFrames:
    """A video kept open: a clip seeks to its keyframe and decodes forward (expand.data.video).

    A re-encoded cache entry (``short_side`` None: stored at its size), or with the cache off
    the source itself, resized as it is decoded.
    """

    def __init__(self, path: str, fps: float, short_side: Optional[int] = None) -> None:
        from expand.data.video import VideoReader

        self.reader = VideoReader(path, fps, short_side)

    def __len__(self) -> int:
        return len(self.reader)

    def read(self, indices: Sequence[int]) -> np.ndarray:
        return self.reader.read(indices)


StreamFrames = VideoFrames  # the cache-off name: the source video read by seeking


def open_store(path: str, fmt: str, fps: float) -> FrameSource:
    if fmt == "jpeg":
        return JpegFrames(path)
    if fmt == "h264":
        return VideoFrames(path, fps)
    if fmt == "npy":
        return ArrayFrames(np.load(path, mmap_mode="r"))
    raise ValueError(f"unknown cache format {fmt!r} (one of {', '.join(FORMATS)})")
