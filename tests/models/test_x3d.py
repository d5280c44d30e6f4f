import pytest
import torch

from expand.models.x3d import build_x3d
from expand.spec import ArchSpec

X3D_M = ArchSpec(16, 5, 224, width=2.0, bottleneck=2.25, depth=2.2)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_x3d_m_parameter_count_is_exact():
    # pytorchvideo create_x3d(input_clip_length=16, input_crop_size=224): 3,794,274.
    assert n_params(build_x3d(X3D_M, variant="pytorchvideo")) == 3_794_274
    # SlowFast adds a BN to res2's stride-only shortcut (24 -> 24 channels): 2 x 24 more.
    assert n_params(build_x3d(X3D_M)) == 3_794_274 + 48


def test_structure_follows_slowfast_names():
    model = build_x3d(X3D_M)
    names = dict(model.named_modules())
    for name in ("s1.conv_xy", "s1.conv", "s2.res0.branch1_bn", "s2.res0.branch2.se",
                 "s2.res2.branch2.se", "head.conv_5", "head.lin_5", "head.projection"):
        assert name in names, name
    assert "s2.res1.branch2.se" not in names  # SE on every other block only
    assert "s3.res1.branch1" not in names  # identity shortcut inside a stage
    assert names["s1.conv"].groups == 24  # channel-wise temporal stem conv
    assert names["s2.res0.branch2.b"].groups == 54  # channel-wise 3x3x3
    assert names["s2.res0.branch2.b"].stride == (1, 2, 2)
    assert len([n for n in names if n.startswith("s4.res") and n.count(".") == 1]) == 11


def test_zero_init_of_final_bn():
    model = build_x3d(X3D_M)
    assert torch.all(model.s3.res1.branch2.c_bn.weight == 0)
    assert torch.all(model.s3.res1.branch2.a_bn.weight == 1)


@pytest.mark.parametrize(
    "spec",
    [
        ArchSpec(1, 8, 32),  # one frame, the smallest crop
        ArchSpec(1, 8, 64, width=0.5, bottleneck=0.5, depth=0.5),
        ArchSpec(3, 4, 72, width=1.37, bottleneck=1.13, depth=1.3),  # odd sizes
    ],
)
def test_builds_and_runs_every_kind_of_spec(spec):
    model = build_x3d(spec, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, spec.frames, spec.crop, spec.crop))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_larger_test_crop_is_accepted():
    spec = ArchSpec(2, 4, 64)
    model = build_x3d(spec, num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 2, 96, 96)).shape == (1, 3)


def test_channels_last_3d_gives_the_same_result():
    spec = ArchSpec(4, 2, 64, width=1.5)
    torch.manual_seed(0)
    model = build_x3d(spec, num_classes=5).eval()
    x = torch.randn(2, 3, 4, 64, 64)
    with torch.no_grad():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last_3d)
        out = model_cl(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_backward_pass_in_train_mode():
    spec = ArchSpec(2, 4, 48)
    model = build_x3d(spec, num_classes=4).train()
    loss = model(torch.randn(3, 3, 2, 48, 48)).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.slow
def test_torch_compile_matches_eager():
    spec = ArchSpec(1, 8, 32)
    model = build_x3d(spec, num_classes=3).eval()
    x = torch.randn(1, 3, 1, 32, 32)
    compiled = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
