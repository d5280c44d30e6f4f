import pytest

from expand.errors import SpecError
from expand.spec import ArchSpec

X3D_M = dict(frames=16, stride=5, crop=224, width=2.0, bottleneck=2.25, depth=2.2)


def test_x3d_m_derived_architecture_matches_slowfast():
    s = ArchSpec(**X3D_M)
    assert s.base_stage_widths == (12, 24, 48, 96)
    assert s.stem_width == 24
    assert s.stage_widths == (24, 48, 96, 192)
    assert s.stage_inner_widths == (54, 108, 216, 432)
    assert s.stage_blocks == (3, 5, 11, 7)  # ceil(2.2 x [1,2,5,3]) without float error
    assert s.head_inner_width == 432


def test_name_is_readable_and_stable():
    assert ArchSpec(**X3D_M).name == "x3d_16x5_224_w2.0_b2.25_d2.2"
    assert ArchSpec(1, 8, 64, width=1.41).name == "x3d_1x8_64_w1.41_b1.0_d1.0"


def test_hashable_and_equal_after_float_noise():
    a = ArchSpec(1, 8, 64, width=0.1 + 0.2)
    b = ArchSpec(1, 8, 64, width=0.3)
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1


def test_round_trip_dict():
    s = ArchSpec(**X3D_M, num_classes=10, dim_c5=512)
    assert ArchSpec.from_dict(s.to_dict()) == s
    assert s.factors() == X3D_M


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"frames": 0}, "frames"),
        ({"frames": -3}, "frames"),
        ({"frames": 2.5}, "frames"),
        ({"frames": True}, "frames"),
        ({"stride": 0}, "stride"),
        ({"crop": 66}, "crop"),  # not a multiple of 4
        ({"crop": 16}, "crop"),  # below the 32 px the network needs
        ({"width": 0}, "width"),
        ({"bottleneck": -1.0}, "bottleneck"),
        ({"depth": float("nan")}, "depth"),
        ({"num_classes": 0}, "num_classes"),
        ({"se_ratio": 1.5}, "se_ratio"),
        ({"base_blocks": (1, 2, 5)}, "base_blocks"),
    ],
)
def test_validation_names_the_field(changes, field):
    kwargs = dict(X3D_M) | changes
    with pytest.raises(SpecError, match=rf"ArchSpec\.{field}"):
        ArchSpec(**kwargs)


def test_integral_floats_are_accepted_as_integers():
    s = ArchSpec(frames=4.0, stride=12.0, crop=160.0)
    assert (s.frames, s.stride, s.crop) == (4, 12, 160)
    assert isinstance(s.frames, int)


def test_from_dict_rejects_unknown_and_missing_fields():
    with pytest.raises(SpecError, match="unknown field"):
        ArchSpec.from_dict({"frames": 1, "stride": 1, "crop": 64, "colour": 3})
    with pytest.raises(SpecError, match="missing field"):
        ArchSpec.from_dict({"frames": 1, "stride": 1})


def test_tiny_width_that_leaves_no_channels_is_rejected():
    with pytest.raises(SpecError, match="no channels"):
        ArchSpec(1, 1, 64, width=1.0, bottleneck=0.01)
