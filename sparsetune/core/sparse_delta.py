"""A sparse step that costs what sparsity promises: ∂L/∂values without a dense ∂L/∂W.

The reference (`sparse.SelectedValues`) is a parametrization: the forward pass builds
W_eff = θ0 with `values` written in, and autograd gathers `values.grad` from the dense
∂L/∂W_eff that the Linear/Embedding backward computes anyway. That costs a full step
(benchmarks/README.md: 0.99× full fine-tuning) and holds the same activations. This
module is the fast path, plugged in at the same seam (`sparse.attach(factory=...)`):
`SparseDelta` keeps the parametrization (so `module.weight`, `materialise`, eval and
checkpoints see exactly the reference's tensor) and additionally replaces the owning
module's forward for the two cases where a weight gradient is expensive:

Linear weights (`_SparseLinear`).
  Forward: F.linear with the frozen θ0 tensor itself, into which `values` have been
  written in place (`SparseDelta.sync`; only at the k selected positions, and only
  when `values` changed since the last write, so entries outside the mask are never
  touched and a tensor saved for backward is never modified behind autograd's back).
  No copy of W per step, no θ0 x + sparse-correction pass.
  Backward: ∂L/∂x = g W as usual; ∂L/∂values[e] = Σ_n g[n, r_e] x[n, c_e] at each
  selected (r_e, c_e) only, by the cheapest of five plans (`LinearPlan`), chosen per
  tensor from a cost model measured on CPU (`CPU_COSTS`):
    dense   g^T x, then gather k entries (the reference's cost; wins when k is large);
    cols    g^T x[:, C]  for the distinct columns C the entries read (SAM masks
            select few columns per tensor: a narrow GEMM, and only x[:, C] is saved);
    rows    g[:, R]^T x  for the distinct rows R;
    block   g[:, R]^T x[:, C];
    sddmm   (CPU) torch.sparse.sampled_addmm over the k entries on transposed,
            contiguous g[:, R]^T and x[:, C]^T: k dot products of N tokens (random
            masks touch nearly every row and column, so only this avoids a GEMM).
  The plan is a pure function of the mask, the shape, the device type and the compute
  dtype (never of a timing taken at run time), so a resumed run takes the same path
  and stays bitwise.
  Saved for backward: W (the parameter itself, no copy; re-cast under autocast), and
  x itself (shared with every other user, no copy) where the plan reads all of its
  columns; otherwise only x[:, C] (or its transpose), in the compute dtype.
  A frozen Linear under plain autograd saves no x at all; the cols plan brings a
  touched Linear close to that.

Embeddings (`_SparseEmbedding`, word/position/token type).
  ∂L/∂values from the looked-up rows only: the tokens whose id is a selected row are
  index_add-ed into a [|R|, |C|] buffer, then k entries are read off. Never a dense
  [vocab, d] gradient. The padding row gets no gradient (as F.embedding's backward).

Biases and LayerNorm weights keep the reference parametrization: their dense gradient
is a [d] vector (a token sum), cheaper than any bookkeeping, and exact.

Autocast (bf16/fp16, CPU or CUDA): the Linear computes in the autocast dtype as
F.linear would; `values` and their gradients stay in the parameter dtype (fp32), the
sddmm dot products accumulate in fp32. Pure PyTorch, no compiled extension.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn

# Cost model: nanoseconds per token for each kind of work, measured on the CPU the
# benchmarks ran on (AMD Zen 5, one thread; benchmarks/README.md "train"). Only the
# ratios matter: a plan is chosen by comparing sums of these.
#   gemm_row + gemm_mac·C'  per output row of a [R', N] x [N, C'] GEMM (narrow GEMMs are
#                           less efficient per multiply-add: the fixed row term);
#   gather                  per element of x[:, C] or g[:, R] (index_select on dim 1);
#   tgather / transpose     per element of a transposed gather / a full transpose (bf16:
#                           then cast to fp32, sampled_addmm has no bf16 kernel);
#   dot                     per selected entry in sampled_addmm (two contiguous rows).
# Re-measure with benchmarks/sparse_plans.py: it prints each plan's measured time beside
# the model's estimate for random and SAM masks on MiniLM's shapes.
CPU_COSTS = {
    torch.float32: dict(gemm_row=0.8, gemm_mac=0.021, gather=2.0, tgather=5.0, transpose=1.0, dot=0.25),
    torch.bfloat16: dict(gemm_row=0.2, gemm_mac=0.011, gather=2.0, tgather=4.0, transpose=1.2, dot=0.2),
}
# Accelerators: GEMMs are cheap, gathers bandwidth-bound; no sddmm (sampled_addmm on CUDA
# wants cuSPARSE-supported dtypes and layouts). Rough, but only the ranking matters.
ACCELERATOR_COSTS = dict(gemm_row=0.01, gemm_mac=0.0005, gather=0.05, tgather=0.1, transpose=0.05, dot=math.inf)
PLANS = ("dense", "cols", "rows", "block", "sddmm")


def _costs(device_type: str, dtype: torch.dtype) -> dict[str, float]:
    if device_type == "cpu":
        return CPU_COSTS.get(dtype, CPU_COSTS[torch.float32])
    return ACCELERATOR_COSTS


def _compute_dtype(device_type: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype F.linear would compute in: the autocast dtype where autocast is on."""
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return dtype


@dataclass
class LinearPlan:
    """How one Linear computes ∂L/∂values (see the module docstring); built once per dtype."""

    kind: str
    rows: torch.Tensor | None  # distinct rows R read from g (None: all)
    cols: torch.Tensor | None  # distinct columns C read from x (None: all)
    take: torch.Tensor | None  # positions of the k entries in the [R', C'] result (dense/cols/rows/block)
    csr: torch.Tensor | None = None  # sddmm: sparse CSR [R', C'] pattern, entries in sorted order
    order: torch.Tensor | None = None  # sddmm: result position of each entry (index may be unsorted)


def linear_costs(
    rows: torch.Tensor, cols: torch.Tensor, shape: tuple[int, int], costs: dict[str, float]
) -> dict[str, float]:
    """Estimated ns per token of each plan for entries at (rows, cols) of an [out, in] weight."""
    out_features, in_features = shape
    k = rows.numel()
    r, c = int(rows.unique().numel()), int(cols.unique().numel())

    def gemm(rr: int, cc: int) -> float:
        return rr * (costs["gemm_row"] + costs["gemm_mac"] * cc)

    transpose_x = min(costs["tgather"] * c, costs["transpose"] * in_features)
    transpose_g = min(costs["tgather"] * r, costs["transpose"] * out_features)
    return {
        "dense": gemm(out_features, in_features),
        "cols": costs["gather"] * c + gemm(out_features, c),
        "rows": costs["gather"] * r + gemm(r, in_features),
        "block": costs["gather"] * (r + c) + gemm(r, c),
        "sddmm": transpose_x + transpose_g + costs["dot"] * k,
    }


def build_linear_plan(
    index: torch.Tensor, shape: tuple[int, int], device_type: str, dtype: torch.dtype, kind: str | None = None
) -> LinearPlan:
    """The cheapest plan by the cost model (or `kind`, for tests and benchmarks)."""
    out_features, in_features = shape
    rows, cols = index // in_features, index % in_features
    if kind is None:
        estimate = linear_costs(rows, cols, shape, _costs(device_type, dtype))
        if device_type != "cpu":
            estimate.pop("sddmm")
        kind = min(estimate, key=estimate.get)  # ties: the first in PLANS order
    use_rows = kind in ("rows", "block") or (
        kind == "sddmm" and _prefers_gather(rows, out_features, device_type, dtype)
    )
    use_cols = kind in ("cols", "block") or (kind == "sddmm" and _prefers_gather(cols, in_features, device_type, dtype))
    distinct_rows = torch.unique(rows) if use_rows else None
    distinct_cols = torch.unique(cols) if use_cols else None
    r_pos = torch.searchsorted(distinct_rows, rows) if use_rows else rows
    c_pos = torch.searchsorted(distinct_cols, cols) if use_cols else cols
    width = distinct_cols.numel() if use_cols else in_features
    height = distinct_rows.numel() if use_rows else out_features
    if kind != "sddmm":
        return LinearPlan(kind, distinct_rows, distinct_cols, r_pos * width + c_pos)
    flat = r_pos * width + c_pos
    sorted_flat, order = torch.sort(flat)
    counts = torch.bincount(r_pos, minlength=height)
    crow = torch.zeros(height + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(counts, 0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we use one kernel of it, tested
        warnings.simplefilter("ignore", UserWarning)
        csr = torch.sparse_csr_tensor(
            crow,
            sorted_flat % width,
            torch.zeros(sorted_flat.numel(), dtype=torch.float32),
            (height, width),
            check_invariants=False,
        )
    position = torch.empty_like(order)
    position[order] = torch.arange(order.numel())
    return LinearPlan(kind, distinct_rows, distinct_cols, None, csr, position)


def _prefers_gather(positions: torch.Tensor, size: int, device_type: str, dtype: torch.dtype) -> bool:
    costs = _costs(device_type, dtype)
    return costs["tgather"] * positions.unique().numel() < costs["transpose"] * size


def _plan_to(plan: LinearPlan, device: torch.device) -> LinearPlan:
    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    return LinearPlan(plan.kind, move(plan.rows), move(plan.cols), move(plan.take), move(plan.csr), move(plan.order))


class _SparseLinear(torch.autograd.Function):
    """y = x Wᵀ + b with W already holding `values`; backward gives ∂L/∂values only at `index`."""

    @staticmethod
    def forward(ctx, x, weight, bias, values, plan: LinearPlan, dtype: torch.dtype):
        device_type = x.device.type
        with torch.autocast(device_type, enabled=False):
            xc = x.to(dtype)
            y = F.linear(xc, weight.to(dtype), None if bias is None else bias.to(dtype))
            saved = None
            if ctx.needs_input_grad[3]:
                x2 = xc.reshape(-1, xc.shape[-1])  # [N, in]
                if plan.kind == "sddmm" and plan.cols is not None:
                    saved = x2.t().index_select(0, plan.cols)  # [|C|, N]: transposed in backward's layout
                elif plan.cols is not None:
                    saved = x2.index_select(1, plan.cols)  # [N, |C|]: only what the entries read
                else:
                    saved = xc  # all of x: shared with whoever else saved it, no copy
        ctx.plan, ctx.dtype, ctx.x_dtype = plan, dtype, x.dtype
        ctx.bias_dtype, ctx.values_dtype = None if bias is None else bias.dtype, values.dtype
        ctx.save_for_backward(weight, saved)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        weight, saved = ctx.saved_tensors
        plan, dtype = ctx.plan, ctx.dtype
        need_x, _, need_bias, need_values = ctx.needs_input_grad[:4]
        grad_x = grad_bias = grad_values = None
        with torch.autocast(grad_out.device.type, enabled=False):
            g = grad_out.to(dtype)
            if need_x:
                grad_x = (g @ weight.to(dtype)).to(ctx.x_dtype)
            g2 = g.reshape(-1, g.shape[-1])  # [N, out]
            if need_bias:
                grad_bias = g2.sum(0, dtype=torch.float32).to(ctx.bias_dtype)
            if need_values:
                grad_values = _linear_values_grad(plan, g2, saved).to(ctx.values_dtype)
        return grad_x, None, grad_bias, grad_values, None, None


def _transposed_f32(matrix: torch.Tensor, select: torch.Tensor | None) -> torch.Tensor:
    """[N, d] -> [|select| or d, N] float32 contiguous: sampled_addmm on CPU has no bf16
    kernel (and so accumulates in fp32). Transposing in the narrow dtype first, then
    casting contiguously, measured ~1.8x faster than one casting transpose."""
    source = matrix.t() if select is None else matrix.t().index_select(0, select)
    return source.contiguous().to(torch.float32)


def _linear_values_grad(plan: LinearPlan, g2: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
    if plan.kind == "sddmm":
        g_rows = _transposed_f32(g2, plan.rows)  # [R', N]
        if plan.cols is None:  # x itself was saved (shared, no copy): transpose it now
            x_cols = _transposed_f32(saved.reshape(-1, saved.shape[-1]), None)
        else:
            x_cols = saved.to(torch.float32)  # [|C|, N], already transposed
        result = torch.sparse.sampled_addmm(plan.csr, g_rows, x_cols.t(), beta=0.0)
        return result.values()[plan.order]
    g_part = g2 if plan.rows is None else g2.index_select(1, plan.rows)  # [N, R']
    x_part = saved.reshape(-1, saved.shape[-1])  # [N, C']
    return (g_part.t() @ x_part).reshape(-1)[plan.take].to(torch.float32)


class _SparseEmbedding(torch.autograd.Function):
    """Lookup in W (already holding `values`); ∂L/∂values from the looked-up rows only."""

    @staticmethod
    def forward(ctx, ids, weight, values, plan: "EmbeddingPlan", padding_idx):
        ctx.plan = plan
        ctx.save_for_backward(ids)
        return F.embedding(ids, weight, padding_idx)

    @staticmethod
    def backward(ctx, grad_out):
        (ids,) = ctx.saved_tensors
        plan = ctx.plan
        grad_values = None
        if ctx.needs_input_grad[2]:
            slots = plan.slot[ids.reshape(-1)]  # [N]: the token's row's place in R; -1 unselected/padding
            hit = (slots >= 0).nonzero().squeeze(1)
            # Only rows this batch looked up get a sum: [≤ N, |C|], never [|R|, |C|] (a random
            # mask selects from nearly every row of the vocabulary).
            looked_up, inverse = torch.unique(slots.index_select(0, hit), return_inverse=True)
            g2 = grad_out.reshape(-1, grad_out.shape[-1])
            part = g2.index_select(0, hit).index_select(1, plan.cols).to(torch.float32)  # [hits, |C|]
            sums = torch.zeros(looked_up.numel() + 1, plan.cols.numel(), dtype=torch.float32, device=g2.device)
            sums.index_add_(0, inverse, part)  # the last row stays 0: entries of rows not looked up
            place = torch.full((plan.rows.numel(),), looked_up.numel(), dtype=torch.long, device=g2.device)
            place[looked_up] = torch.arange(looked_up.numel(), device=g2.device)
            grad_values = sums[place.index_select(0, plan.entry_row), plan.entry_col]
        return None, None, grad_values, None, None


@dataclass
class EmbeddingPlan:
    rows: torch.Tensor  # distinct selected rows R
    cols: torch.Tensor  # distinct selected columns C
    slot: torch.Tensor  # [vocab]: place of each row in R, -1 for rows without entries (and padding)
    entry_row: torch.Tensor  # [k]: each entry's row, as a place in R
    entry_col: torch.Tensor  # [k]: each entry's column, as a place in C


def build_embedding_plan(index: torch.Tensor, shape: tuple[int, int], padding_idx: int | None) -> EmbeddingPlan:
    vocab, dim = shape
    rows, cols = index // dim, index % dim
    distinct_rows, distinct_cols = torch.unique(rows), torch.unique(cols)
    slot = torch.full((vocab,), -1, dtype=torch.long)
    slot[distinct_rows] = torch.arange(distinct_rows.numel())
    if padding_idx is not None:
        slot[padding_idx] = -1  # F.embedding gives the padding row no gradient
    return EmbeddingPlan(
        distinct_rows,
        distinct_cols,
        slot,
        torch.searchsorted(distinct_rows, rows),
        torch.searchsorted(distinct_cols, cols),
    )


class SparseDelta(nn.Module):
    """The reference parametrization, plus a fast forward/backward for its Linear or Embedding.

    As a parametrization it is `sparse.SelectedValues` (same `index`, `values`, same
    effective tensor), so everything that reads `module.weight` is unchanged. `install`
    then routes the owning module's forward through `_SparseLinear`/`_SparseEmbedding`.
    """

    def __init__(self, original: torch.Tensor, index: torch.Tensor, plan: str | None = None):
        super().__init__()
        self.register_buffer("index", index.to(torch.long), persistent=False)  # [k]
        self.values = nn.Parameter(original.detach().reshape(-1)[self.index].clone())  # [k]
        self.forced_plan = plan  # a LinearPlan kind for every Linear (tests, benchmarks); None: cost model
        self._plans: dict = {}
        self._written: tuple | None = None

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        # The reference formula: what `module.weight` returns (eval, export, inspection).
        return original.reshape(-1).index_put((self.index,), self.values).view_as(original)

    # -- the fast path ----------------------------------------------------------
    def install(self, module: nn.Module, attribute: str) -> bool:
        """Route `module`'s forward through the fast path; False where there is none."""
        if attribute != "weight" or self.values.numel() == 0:
            return False
        if _plain(module, nn.Linear) and module.parametrizations.weight.original.dim() == 2:
            module.forward = MethodType(_linear_forward, module)
            return True
        if (
            _plain(module, nn.Embedding)
            and module.max_norm is None
            and not module.scale_grad_by_freq
            and not module.sparse
        ):
            module.forward = MethodType(_embedding_forward, module)
            return True
        return False

    def sync(self, original: torch.Tensor) -> None:
        """Write `values` into θ0's storage at `index`, if they changed since the last write.

        Only the k selected positions are written: outside the mask the tensor stays θ0
        bit for bit. Skipping unchanged values keeps the version counter of a tensor that
        autograd saved intact (two forwards before one backward, recomputation).
        """
        key = (self.values._version, self.values.data_ptr(), original.data_ptr(), original._version)
        if key == self._written:
            return
        with torch.no_grad():
            original.reshape(-1).index_put_((self.index,), self.values.detach().to(original.dtype))
        self._written = (self.values._version, self.values.data_ptr(), original.data_ptr(), original._version)

    def linear_plan(self, shape: tuple[int, int], device: torch.device, dtype: torch.dtype) -> LinearPlan:
        key = ("linear", device, dtype)
        if key not in self._plans:
            plan = build_linear_plan(self.index.cpu(), shape, device.type, dtype, self.forced_plan)
            self._plans[key] = _plan_to(plan, device)
        return self._plans[key]

    def embedding_plan(self, shape: tuple[int, int], padding_idx: int | None, device: torch.device) -> EmbeddingPlan:
        key = ("embedding", device)
        if key not in self._plans:
            plan = build_embedding_plan(self.index.cpu(), shape, padding_idx)
            self._plans[key] = EmbeddingPlan(
                *(t.to(device) for t in (plan.rows, plan.cols, plan.slot, plan.entry_row, plan.entry_col))
            )
        return self._plans[key]


def _plain(module: nn.Module, base: type) -> bool:
    """A `base` (parametrized or not) whose forward is `base.forward`: subclasses with a
    forward of their own (peft layers, quantized Linears) keep the reference path."""
    return isinstance(module, base) and type(module).forward is base.forward


def _linear_forward(module: nn.Module, input: torch.Tensor) -> torch.Tensor:
    delta: SparseDelta = module.parametrizations.weight[0]
    weight = module.parametrizations.weight.original
    delta.sync(weight)
    dtype = _compute_dtype(input.device.type, input.dtype)
    plan = delta.linear_plan(tuple(weight.shape), weight.device, dtype)
    return _SparseLinear.apply(input, weight, module.bias, delta.values, plan, dtype)


def _embedding_forward(module: nn.Module, input: torch.Tensor) -> torch.Tensor:
    delta: SparseDelta = module.parametrizations.weight[0]
    weight = module.parametrizations.weight.original
    delta.sync(weight)
    plan = delta.embedding_plan(tuple(weight.shape), module.padding_idx, weight.device)
    return _SparseEmbedding.apply(input, weight, delta.values, plan, module.padding_idx)


def uninstall(module: nn.Module) -> None:
    """Give `module` its class's forward back (before removing the parametrization)."""
    module.__dict__.pop("forward", None)
