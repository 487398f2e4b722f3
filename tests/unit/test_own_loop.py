"""README "Your own loop": a mask, `attach` and `materialise` train exactly the selected
entries (and the head) in a loop that is not sparsetune's."""

from __future__ import annotations

import torch

from sparsetune import Mask, get_task, load_model, load_tokenizer
from sparsetune.core.sparse import attach, materialise

from .training_support import write_mask


def test_the_readme_loop_changes_the_selected_entries_and_no_other(tiny_model_dir, tmp_path):
    mask = Mask.load(write_mask(tmp_path, tiny_model_dir))
    loaded = load_model(mask.metadata["model"], get_task(mask.metadata["task"]), seed=0, pooler="head")
    model, tokenizer = loaded.model, load_tokenizer(mask.metadata["model"])
    theta0 = {name: p.detach().clone() for name, p in loaded.eligible().items()}
    mask.validate_against(loaded.eligible())
    values = attach(model, mask, loaded.eligible())
    head = [p for name, p in model.named_parameters() if name in loaded.head_names]
    optimizer = torch.optim.AdamW([*values.values(), *head], lr=1e-2)
    batch = tokenizer(["a b c"] * 4, ["d e"] * 4, return_tensors="pt", padding=True)
    for _ in range(2):
        model(**batch, labels=torch.tensor([0, 1, 2, 0])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    materialise(model)
    assert not any(torch.nn.utils.parametrize.is_parametrized(module) for module in model.modules())
    changed = {name: (p.detach() != theta0[name]).view(-1) for name, p in model.named_parameters() if name in theta0}
    selected = {name: torch.zeros_like(flags) for name, flags in changed.items()}
    for name, index in mask.indices.items():
        selected[name][index.long()] = True
    moved = sum(int(flags.sum()) for flags in changed.values())
    assert 0.9 * mask.selected < moved <= mask.selected  # an entry of zero value and zero gradient stays
    assert not any(bool((flags & ~selected[name]).any()) for name, flags in changed.items())  # and no other
