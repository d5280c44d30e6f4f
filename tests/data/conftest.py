import numpy as np
import pytest

from expand.data.synth import write_video


def counter_frames(n, size=64):
    """Frames whose index is drawn as a bar of brightness: frame k has value 4*k + 10."""
    frames = np.zeros((n, size, size, 3), dtype=np.uint8)
    for k in range(n):
        frames[k] = min(255, 4 * k + 10)
    return frames


@pytest.fixture
def make_video(tmp_path):
    def make(name, n=30, fps=30.0, codec="libx264", size=64, gop=None, frames=None):
        path = tmp_path / name
        write_video(str(path), counter_frames(n, size) if frames is None else frames, fps, codec=codec, gop=gop)
        return str(path)

    return make
