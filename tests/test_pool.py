"""The image history pool (Shrivastava et al. 2017; CycleGAN's 50-image buffer): a mix of current
and stored images, a bounded size, detached CPU copies, and exact state round trips."""

from __future__ import annotations

import pytest
import torch

from translate.data.pool import ImagePool
from translate.engine.context import TrainContext
from translate.losses.objective import GANObjective


def batch(start: int, n: int = 4) -> torch.Tensor:
    """Images whose every pixel holds their id, so outputs can be traced to inputs."""
    ids = torch.arange(start, start + n, dtype=torch.float32)
    return ids.view(n, 1, 1, 1).expand(n, 3, 2, 2).clone()


def ids(images: torch.Tensor) -> list[int]:
    return [int(v) for v in images[:, 0, 0, 0]]


def test_size_zero_passes_images_through() -> None:
    pool = ImagePool(0)
    x = batch(0)
    assert pool.query(x) is x
    assert pool.images == []


def test_negative_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="pool size"):
        ImagePool(-1)


def test_fills_first_then_mixes_current_and_stored() -> None:
    pool = ImagePool(6, seed=0)
    assert ids(pool.query(batch(0))) == [0, 1, 2, 3]  # filling: new images come straight back
    out = ids(pool.query(batch(4)))  # 4, 5 fill it; 6 and 7 may be swapped for stored ones
    assert out[:2] == [4, 5]
    assert out[2] in (6, *range(6)) and out[3] in (7, *range(7))
    assert len(pool.images) == 6

    from_history = from_current = 0
    for step in range(2, 60):
        new = batch(4 * step)
        out = ids(pool.query(new))
        assert len(out) == 4 and len(pool.images) == 6  # never grows past its size
        for got, fresh in zip(out, ids(new), strict=True):
            if got == fresh:
                from_current += 1
            else:  # images are handled in order, so an earlier one of this batch may come back
                assert got < fresh, "a stored image must be an earlier one"
                from_history += 1
    # each image is swapped for a stored one with probability 1/2
    total = from_history + from_current
    assert 0.35 < from_history / total < 0.65, (from_history, from_current)


def test_a_returned_stored_image_is_replaced_by_the_new_one() -> None:
    pool = ImagePool(2, seed=3)
    pool.query(batch(0, 2))
    for step in range(1, 30):
        before = set(ids(torch.cat(pool.images)))
        new = batch(10 * step, 1)
        out = ids(pool.query(new))[0]
        after = set(ids(torch.cat(pool.images)))
        if out == 10 * step:
            assert after == before  # kept the current image; history unchanged
        else:
            assert out in before and after == (before - {out}) | {10 * step}


def test_stores_detached_cpu_copies() -> None:
    pool = ImagePool(4, seed=0)
    x = batch(0).requires_grad_()
    out = pool.query(x * 1)
    assert not out.requires_grad
    assert all(not im.requires_grad and im.device.type == "cpu" for im in pool.images)
    with torch.no_grad():
        x.add_(100)  # the caller's tensor changes; the history must not
    assert ids(torch.cat(pool.images)) == [0, 1, 2, 3]


def test_state_round_trip_reproduces_future_queries() -> None:
    pool = ImagePool(5, seed=7)
    for step in range(4):
        pool.query(batch(4 * step))
    state = pool.state_dict()
    restored = ImagePool(int(state["size"]))
    restored.load_state_dict(state)
    for step in range(4, 12):
        assert torch.equal(pool.query(batch(4 * step)), restored.query(batch(4 * step)))


def test_same_seed_same_choices() -> None:
    a, b = ImagePool(3, seed=1), ImagePool(3, seed=1)
    for step in range(10):
        assert ids(a.query(batch(4 * step))) == ids(b.query(batch(4 * step)))


def test_engine_pools_are_named_and_checkpointed() -> None:
    def context() -> TrainContext:
        return TrainContext(
            models={},
            optimizers={},
            device=torch.device("cpu"),
            amp="none",
            gan=GANObjective(),
            seed=0,
        )

    ctx = context()
    pool_a, pool_b = ctx.image_pool("fake_A", 3), ctx.image_pool("fake_B", 3)
    assert ctx.image_pool("fake_A", 3) is pool_a and pool_a is not pool_b
    for step in range(3):
        pool_a.query(batch(4 * step))
        pool_b.query(batch(100 + 4 * step))
    resumed = context()
    resumed.load_state_dict(ctx.state_dict())
    for name in ("fake_A", "fake_B"):
        again = resumed.image_pool(name, 3)
        assert len(again.images) == 3
        assert torch.equal(again.query(batch(50)), ctx.image_pool(name, 3).query(batch(50)))
