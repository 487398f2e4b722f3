"""The Mask class: exact top-k with deterministic ties, totals, file round trip, every check."""

import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sparsetune.errors import FileFormatError, MismatchError, NumericalError, UsageError
from sparsetune.formats.common import save_tensors
from sparsetune.formats.mask import Mask, check_fraction, top_k_positions


def random_scores(seed: int = 0, ties: bool = True) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scores = {
        "a.weight": torch.rand(7, 5, generator=generator),
        "a.bias": torch.rand(5, generator=generator),
        "b.weight": torch.rand(4, 9, generator=generator),
        "c.weight": torch.rand(3, generator=generator),
    }
    if ties:  # many exact ties, across tensors, right at any threshold
        for value in scores.values():
            value.copy_((value * 4).floor() / 4)
    return scores


def scores_order() -> list[str]:
    return list(random_scores())


def reference_top_k(values: np.ndarray, k: int) -> list[int]:
    """Independent top-k: sort by (-score, position) and take the first k positions."""
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    return sorted(order[:k])


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 1.0])
def test_global_mask_is_exactly_the_top_k_with_lower_positions_winning_ties(p):
    scores = random_scores()
    mask = Mask.from_scores(scores, p, "global")
    flat = torch.cat([value.reshape(-1) for value in scores.values()]).numpy()
    k = math.floor(flat.size * p)
    expected = reference_top_k(flat, k)
    offsets = np.cumsum([0] + [value.numel() for value in scores.values()])
    got = sorted(int(i) + int(offsets[j]) for j, name in enumerate(scores) for i in mask.indices.get(name, []))
    assert got == expected
    assert mask.selected == k
    assert mask.eligible == flat.size


@pytest.mark.parametrize("p", [0.1, 0.34, 1.0])
def test_per_tensor_mask_takes_floor_n_p_in_each_tensor(p):
    scores = random_scores(1)
    mask = Mask.from_scores(scores, p, "per-tensor")
    for name, value in scores.items():
        k = math.floor(value.numel() * p)
        got = mask.indices[name].tolist() if name in mask.indices else []
        assert got == reference_top_k(value.reshape(-1).numpy(), k), name
    assert mask.selected == sum(math.floor(value.numel() * p) for value in scores.values())


def test_global_and_per_tensor_differ_when_one_tensor_dominates():
    scores = {"big": torch.arange(100, 200, dtype=torch.float32), "small": torch.arange(100, dtype=torch.float32)}
    global_mask = Mask.from_scores(scores, 0.1, "global")
    per_tensor = Mask.from_scores(scores, 0.1, "per-tensor")
    assert global_mask.per_tensor() == {"big": (20, 100), "small": (0, 100)}
    assert per_tensor.per_tensor() == {"big": (10, 100), "small": (10, 100)}


def test_top_k_positions_edge_cases():
    values = torch.tensor([1.0, 3.0, 3.0, 2.0])
    assert top_k_positions(values, 0).tolist() == []
    assert top_k_positions(values, 1).tolist() == [1]
    assert top_k_positions(values, 2).tolist() == [1, 2]
    assert top_k_positions(values, 9).tolist() == [0, 1, 2, 3]
    with pytest.raises(NumericalError, match="NaN"):  # the numbers, not the command line: exit 1
        top_k_positions(torch.tensor([1.0, float("nan")]), 1)


@pytest.mark.parametrize("p", [0, -0.1, 1.5, float("nan"), True, "0.1"])
def test_p_outside_zero_one_is_refused(p):
    with pytest.raises(UsageError, match=r"-p must be in \(0, 1\]"):
        check_fraction(p)
    with pytest.raises(UsageError):
        Mask.from_scores(random_scores(), p)


def test_unknown_scope_and_empty_selection_are_refused():
    with pytest.raises(UsageError, match="--scope must be one of global, per-tensor"):
        Mask.from_scores(random_scores(), 0.1, "layer")
    with pytest.raises(UsageError, match="selects no entry"):
        Mask.from_scores(random_scores(), 1e-6)


def test_totals_density_and_bool_tensor():
    mask = Mask.from_bool({"w": torch.tensor([[True, False], [False, True]]), "b": torch.zeros(3, dtype=torch.bool)})
    assert (mask.selected, mask.eligible) == (2, 7)
    assert mask.density == pytest.approx(2 / 7)
    assert mask.per_tensor() == {"w": (2, 4), "b": (0, 3)}
    assert "b" not in mask.indices
    assert mask.bool_tensor("w").tolist() == [[True, False], [False, True]]
    assert not mask.bool_tensor("b").any()


def test_save_load_round_trip_keeps_indices_shapes_and_typed_metadata(tmp_path):
    metadata = {
        "model": "m",
        "task": "rte",
        "method": "sam",
        "examples": 36,
        "seed": 3,
        "dev_fraction": 0.1,
        "max_length": 64,
        "batch_size": 8,
    }
    mask = Mask.from_scores(random_scores(), 0.2, "global", metadata)
    mask.save(tmp_path / "m.safetensors")
    loaded = Mask.load(tmp_path / "m.safetensors")
    assert loaded.shapes == mask.shapes
    assert list(loaded.indices) == [name for name in scores_order() if name in mask.indices]  # model order, not a-z
    assert set(loaded.indices) == set(mask.indices)
    for name in mask.indices:
        assert torch.equal(loaded.indices[name], mask.indices[name])
    for key, value in {**metadata, "p": 0.2, "scope": "global"}.items():
        assert loaded.metadata[key] == value and type(loaded.metadata[key]) is type(value), key
    assert loaded.metadata["sparsetune_version"]
    loaded.save(tmp_path / "again.safetensors")
    assert (tmp_path / "again.safetensors").read_bytes() == (tmp_path / "m.safetensors").read_bytes()


def test_identical_masks_give_identical_bytes_whatever_the_metadata_order(tmp_path):
    scores = random_scores()
    one = Mask.from_scores(scores, 0.3, metadata={"a": "1", "b": "2", "seed": 1})
    two = Mask.from_scores(scores, 0.3, metadata={"seed": 1, "b": "2", "a": "1"})
    one.save(tmp_path / "1.safetensors")
    two.save(tmp_path / "2.safetensors")
    assert (tmp_path / "1.safetensors").read_bytes() == (tmp_path / "2.safetensors").read_bytes()


def test_validate_against_names_the_tensor():
    mask = Mask.from_scores({"w": torch.rand(4, 3), "b": torch.rand(3)}, 0.5, metadata={"model": "tiny"})
    mask.validate_against({"w": torch.zeros(4, 3), "b": torch.zeros(3), "extra": torch.zeros(2)})
    with pytest.raises(MismatchError, match=r"'b' is not in the model \(the mask was made for tiny\)"):
        mask.validate_against({"w": torch.zeros(4, 3)})
    with pytest.raises(MismatchError, match=r"'w' has shape \[4, 3\] but the model's is \[3, 4\]"):
        mask.validate_against({"w": torch.zeros(3, 4), "b": torch.zeros(3)})
    mask.indices["w"] = torch.tensor([0, 12])
    with pytest.raises(MismatchError, match="indices of 'w' are out of range for 12 entries"):
        mask.validate_against({"w": torch.zeros(4, 3), "b": torch.zeros(3)})
    mask.indices["w"] = torch.tensor([3, 1])
    with pytest.raises(MismatchError, match="'w' are not sorted and unique"):
        mask.validate_against({"w": torch.zeros(4, 3), "b": torch.zeros(3)})


def test_validate_against_a_module(tiny_model_dir):
    from sparsetune.models import load_model
    from sparsetune.tasks import TASKS

    loaded = load_model(tiny_model_dir, TASKS["rte"], seed=0)
    scores = {name: torch.rand(p.shape) for name, p in loaded.eligible().items()}
    Mask.from_scores(scores, 0.01).validate_against(loaded.model)
    other = {
        name: torch.rand(3, *p.shape[1:]) if p.dim() == 2 else torch.rand(p.shape)
        for name, p in loaded.eligible().items()
    }
    with pytest.raises(MismatchError, match="has shape"):
        Mask.from_scores(other, 0.01).validate_against(loaded.model)


def _write_mask_file(path, tensors, shapes):
    save_tensors(path, tensors, {"format": "sparsetune.mask", "version": "1", "shapes": shapes})


@pytest.mark.parametrize(
    "tensors, message",
    [
        ({"w": torch.tensor([0.0, 1.0])}, "expected int32/int64 indices"),
        ({"w": torch.tensor([2, 1], dtype=torch.int32)}, "not sorted and unique"),
        ({"w": torch.tensor([0, 6], dtype=torch.int32)}, "out of range for 6 entries"),
        ({"v": torch.tensor([0], dtype=torch.int32)}, "which its shapes do not list"),
    ],
)
def test_loading_a_corrupt_mask_names_file_and_tensor(tmp_path, tensors, message):
    path = tmp_path / "bad.safetensors"
    _write_mask_file(path, tensors, {"w": [2, 3]})
    with pytest.raises(FileFormatError, match=message) as error:
        Mask.load(path)
    assert "bad.safetensors" in str(error.value)


def test_loading_files_that_are_not_masks(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(FileFormatError, match="safetensors file but not a sparsetune file"):
        Mask.load(plain)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(FileFormatError, match="not a readable safetensors file"):
        Mask.load(junk)
    scores = tmp_path / "scores.safetensors"
    save_tensors(scores, {"w": torch.rand(2)}, {"format": "sparsetune.scores"})
    with pytest.raises(FileFormatError, match="is a sparsetune scores file, expected a mask file"):
        Mask.load(scores)
    with pytest.raises(FileFormatError, match="does not exist"):
        Mask.load(tmp_path / "missing.safetensors")


def test_the_budget_is_the_decimal_p_of_the_count():
    """⌊m·p⌋ in floating point: 100 × 0.29 = 28.999…, one entry short."""
    from sparsetune.formats.mask import budget

    assert math.floor(100 * 0.29) == 28 and budget(100, 0.29) == 29
    assert budget(22_565_376, 0.005) == 112_826 and budget(7, 0.5) == 3
    scores = {"w": torch.arange(100, dtype=torch.float32)}
    assert Mask.from_scores(scores, 0.29).selected == 29
    assert Mask.from_scores(scores, 0.29, "per-tensor").selected == 29
