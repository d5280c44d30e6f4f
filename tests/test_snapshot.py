"""expand/snapshot.py: what is resumed, and what is passed over without costing the trial."""

import torch

from expand.snapshot import TrainState, kept_by, load_snapshot, remove_snapshot, save_snapshot, snapshot_key

CPU = torch.device("cpu")


def _parts(width=4, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, width), torch.nn.BatchNorm1d(width), torch.nn.Linear(width, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt, torch.amp.GradScaler("cpu", enabled=False)


def _train_a_step(model, opt):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(torch.randn(8, 3)), torch.tensor([0, 1] * 4)).backward()
    opt.step()


def test_a_snapshot_restores_weights_momentum_rng_and_the_loop_state(tmp_path):
    path, key = str(tmp_path / "snapshot.pt"), snapshot_key("abc", 4, 10, 2, None)
    model, opt, scaler = _parts()
    _train_a_step(model, opt)
    state = TrainState(step=3, epoch=1, epoch_batches=1, epoch_loss=2.5, epoch_clips=4, losses=[0.7])
    save_snapshot(path, key, state, model, opt, scaler, CPU)
    after = torch.rand(3)  # what the RNG gives next, as saved

    fresh, fresh_opt, fresh_scaler = _parts(seed=1)
    loaded, why = load_snapshot(path, key, fresh, fresh_opt, fresh_scaler, CPU)
    assert why == "" and loaded == state
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    assert torch.equal(fresh_opt.state_dict()["state"][0]["momentum_buffer"],
                       opt.state_dict()["state"][0]["momentum_buffer"])
    assert torch.equal(torch.rand(3), after)


def test_what_does_not_match_is_passed_over_and_leaves_the_model_untouched(tmp_path):
    path, key = str(tmp_path / "snapshot.pt"), snapshot_key("abc", 4, 10, 2, None)
    assert load_snapshot(path, key, *_parts(), CPU) == (None, "")  # no file: a fresh start, nothing to say
    model, opt, scaler = _parts()
    save_snapshot(path, key, TrainState(step=1), model, opt, scaler, CPU)

    other, other_opt, other_scaler = _parts(seed=2)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    state, why = load_snapshot(path, snapshot_key("abc", 2, 20, 4, None), other, other_opt, other_scaler, CPU)
    assert state is None and "other training" in why

    wider, wider_opt, wider_scaler = _parts(width=5)
    wider_before = {k: v.clone() for k, v in wider.state_dict().items()}
    state, why = load_snapshot(path, key, wider, wider_opt, wider_scaler, CPU)
    assert state is None and why == "does not fit the model"
    assert all(torch.equal(v, wider.state_dict()[k]) for k, v in wider_before.items())
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in before.items())
    assert wider_opt.state_dict()["state"] == {}

    (tmp_path / "snapshot.pt").write_bytes(b"not a torch file")
    state, why = load_snapshot(path, key, *_parts(), CPU)
    assert state is None and why.startswith("unreadable")


def test_a_keeper_is_told_of_each_snapshot_written_or_removed_and_a_failing_one_costs_nothing(tmp_path, capsys):
    path, key = str(tmp_path / "snapshot.pt"), snapshot_key("abc", 4, 10, 2, None)
    model, opt, scaler = _parts()
    seen = []

    def keep(p):  # what a remote worker's keeper does: the file's bytes, or None once it is gone
        seen.append((p, open(p, "rb").read() if (tmp_path / "snapshot.pt").exists() else None))

    with kept_by(keep):
        save_snapshot(path, key, TrainState(step=2), model, opt, scaler, CPU)
        remove_snapshot(path)
    save_snapshot(path, key, TrainState(step=3), model, opt, scaler, CPU)  # outside the block: not told
    assert [p for p, _ in seen] == [path, path] and seen[1][1] is None
    (tmp_path / "copy.pt").write_bytes(seen[0][1])  # the bytes it was handed are the whole snapshot
    state, why = load_snapshot(str(tmp_path / "copy.pt"), key, *_parts(seed=3), CPU)
    assert why == "" and state.step == 2

    def broken(p):
        raise ConnectionError("the head is gone")

    with kept_by(broken):
        save_snapshot(path, key, TrainState(step=4), model, opt, scaler, CPU)
    assert load_snapshot(path, key, *_parts(), CPU)[0].step == 4  # written here all the same
    assert "was not mirrored to the head: the head is gone" in capsys.readouterr().err
