"""Structured compaction: physically remove dead units from Flax models.

The model is traced with :func:`jax.make_jaxpr` on a sample input and the jaxpr is
walked once, evaluating every equation and labelling the feature axis of each value
with *units*. Every position along every parameter axis is a unit; operations that tie
positions together (a bias add, a BatchNorm multiply, a residual add, a kernel's input
axis meeting a feature map) merge units in a union-find, so each resulting class is one
channel that must be kept or removed as a whole. Dense and conv layers are recorded as
*edges* (kernel ``(in, out)`` nonzero pattern). A channel is removable when, at every
edge that reads it, either its outgoing weights to kept units are all zero or its value
there does not depend on the input (then it is folded into the layer's bias or the
following BatchNorm mean). Anything the walker does not understand pins the channels it
touches: they are kept and the report says why, unless the user declares those
connections with ``structure=`` (:class:`Link`). The result is always checked against
the original on the sample and random inputs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

__all__ = ["CompactionReport", "LayerRow", "Link", "compact", "compact_linen"]

_ELEMENTWISE = frozenset(
    """abs acos acosh add and asin asinh atan atan2 atanh cbrt ceil clamp convert_element_type
    copy copy_p cos cosh div eq erf erf_inv erfc exp exp2 expm1 floor ge gt imag integer_pow
    is_finite le log log1p logistic lt max min mul ne neg nextafter not or pow real
    reduce_precision rem round rsqrt select_n sign sin sinh sqrt square sub tan tanh xor
    optimization_barrier sharding_constraint""".split()
)
_SUBJAXPR = frozenset(
    "jit pjit closed_call core_call custom_jvp_call custom_vjp_call custom_vjp_call_jaxpr "
    "remat checkpoint".split()
)
_REDUCE = frozenset("reduce_sum reduce_max reduce_min reduce_prod reduce_and reduce_or".split())
_WINDOW = frozenset("reduce_window_max reduce_window_min reduce_window_sum".split())
_VIEW = frozenset("reshape broadcast_in_dim convert_element_type squeeze copy".split())


# ----------------------------------------------------------------------------- tracing


@dataclasses.dataclass
class _Info:
    """What the walker knows about one value.

    ``lab[axis]`` gives the unit of each position along ``axis`` (-1: none). The value at
    a position depends on the model input iff ``base`` or ``dep[axis][i_axis]`` for some
    labelled axis.
    """

    lab: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
    dep: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
    base: bool = False
    view: int | None = None  # parameter leaf this value is a reshaped/cast copy of
    fromx: bool = False  # computed from the input at all (structural, unlike ``dep``)

    @property
    def anydep(self) -> bool:
        return self.base or any(bool(d.any()) for d in self.dep.values())


@dataclasses.dataclass
class _Edge:
    """A dense or convolution layer applied to data: kernel viewed as ``(in, out)``."""

    name: str
    in_units: np.ndarray
    out_units: np.ndarray
    kernel: jax.Array  # (in, out), summed over the spatial taps
    nz: jax.Array  # (in, out) float32: 1 where any tap is nonzero
    const: jax.Array  # (in,) input value at the first position (meaningful where constant)
    in_dep: np.ndarray  # (in,) bool: input channel depends on the model input
    uniform: np.ndarray  # (in,) bool: input channel is the same at every position
    is_zero: np.ndarray  # (in,) bool: input channel is constant zero
    padded: bool  # a constant input channel would not give a constant output
    flops_per_pair: float  # multiply-adds x2 per (in, out) pair per example
    out_var: Any = None
    target: tuple[int, int, np.ndarray, float] | None = None  # leaf, axis, positions, sign


class _UnionFind:
    def __init__(self) -> None:
        self.parent = np.zeros(0, np.int64)

    def new(self, n: int) -> np.ndarray:
        start = len(self.parent)
        self.parent = np.concatenate([self.parent, np.arange(start, start + n)])
        return np.arange(start, start + n)

    def roots(self) -> np.ndarray:
        p = self.parent
        while True:
            q = p[p]
            if np.array_equal(q, p):
                self.parent = p
                return p
            p = q

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        ok = (a >= 0) & (b >= 0)
        for x, y in zip(a[ok].tolist(), b[ok].tolist(), strict=True):
            rx, ry = self._find(x), self._find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)

    def _find(self, x: int) -> int:
        p = self.parent
        while p[x] != x:
            p[x] = p[p[x]]
            x = p[x]
        return x


class _Walker:
    """Evaluates a jaxpr equation by equation while propagating unit labels."""

    def __init__(self, leaf_names: Sequence[str], replay: Sequence[Any] | None = None):
        # Two passes with identical control flow: under jit the numeric facts (zero
        # patterns, constant inputs) are recorded in one compiled call; then the walk is
        # replayed on shapes only, consuming them in order.
        self.recorded: list[Any] = []
        self.replay = None if replay is None else iter(replay)
        self.uf = _UnionFind()
        self.leaf_names = list(leaf_names)
        self.leaf_units: list[list[np.ndarray]] = []
        self.unit_owner: list[tuple[int, int]] = []  # per (leaf, axis) block: start offsets
        self.input_units = np.zeros(0, np.int64)
        self.edges: list[_Edge] = []
        self.pins: list[tuple[np.ndarray, str]] = []
        self.unsupported: dict[str, str] = {}
        self.uses: dict[Any, list[tuple[Any, int]]] = {}
        self.scope_outvars: set[Any] = set()
        self.declared = np.zeros(0, np.int64)  # units named by a user ``structure``

    # -- helpers
    def _stat(self, fn, *args):
        if self.replay is None:
            r = fn(*args)
            self.recorded.append(r)
            return jax.tree.map(lambda t: np.ones(t.shape, t.dtype), r)
        return next(self.replay)

    def pin(self, units: np.ndarray, reason: str) -> None:
        units = units[units >= 0]
        if units.size:
            self.pins.append((units, reason))

    def pin_all(self, info: _Info, reason: str) -> None:
        for u in info.lab.values():
            self.pin(u, reason)

    def run(
        self,
        jaxpr: jcore.ClosedJaxpr,
        leaves: Sequence[jax.Array],
        x: jax.Array,
        prune_inputs: bool,
    ):
        infos = []
        for i, leaf in enumerate(leaves):
            units = {a: self.uf.new(n) for a, n in enumerate(_shape(leaf))}
            self.leaf_units.append([units[a] for a in range(len(_shape(leaf)))])
            infos.append(_Info(lab=units, view=i))
        if not _shape(x):
            raise ValueError("sample_input must have a batch axis")
        self.input_units = self.uf.new(_shape(x)[-1])
        if not prune_inputs:
            self.pin(self.input_units, "inputs kept (prune_inputs=False)")
        infos.append(_Info(lab={len(_shape(x)) - 1: self.input_units}, base=True, fromx=True))
        outs = self._walk(jaxpr.jaxpr, jaxpr.consts, [*leaves, x], infos)
        for _, info in outs:
            self.pin_all(info, "model output")
        return [v for v, _ in outs]

    def _walk(self, jaxpr: jcore.Jaxpr, consts, args, arg_infos):
        env: dict[Any, tuple[Any, _Info]] = {}
        for v, c in zip(jaxpr.constvars, consts, strict=True):
            env[v] = (c, _Info())
        for v, a, i in zip(jaxpr.invars, args, arg_infos, strict=True):
            env[v] = (a, i)
        uses: dict[Any, list[tuple[Any, int]]] = {}
        for eqn in jaxpr.eqns:
            for k, v in enumerate(eqn.invars):
                if not isinstance(v, jcore.Literal):
                    uses.setdefault(v, []).append((eqn, k))
        outset = {v for v in jaxpr.outvars if not isinstance(v, jcore.Literal)}
        first_edge = len(self.edges)

        def read(v):
            if isinstance(v, jcore.Literal):
                return v.val, _Info()
            return env[v]

        for eqn in jaxpr.eqns:
            ins = [read(v) for v in eqn.invars]
            outs = self._eqn(eqn, [a for a, _ in ins], [i for _, i in ins])
            for v, o in zip(eqn.outvars, outs, strict=True):
                env[v] = o
        for e in self.edges[first_edge:]:
            if e.out_var is not None and e.target is None:
                e.target = self._fold_target(e, uses, outset, env)
        return [read(v) for v in jaxpr.outvars]

    def _fold_target(self, e: _Edge, uses, outset, env):
        """Where a constant added to this layer's output can be absorbed (bias, BN mean)."""
        y = e.out_var
        if y in outset or len(uses.get(y, [])) != 1:
            return None
        eqn, k = uses[y][0]
        if eqn.primitive.name not in ("add", "sub"):
            return None
        other = eqn.invars[1 - k]
        if isinstance(other, jcore.Literal):
            return None
        _, oinfo = env[other]
        yinfo = env[y][1]
        if oinfo.view is None or oinfo.anydep:
            return None
        (axis,) = yinfo.lab.keys() if len(yinfo.lab) == 1 else (None,)
        if axis is None or axis not in oinfo.lab:
            return None
        ounits = oinfo.lab[axis]
        units = self.leaf_units[oinfo.view]
        owner = [a for a, u in enumerate(units) if u.size and np.isin(ounits, u).all()]
        others = [u.size for a, u in enumerate(units) if a not in owner]
        if len(owner) != 1 or any(n != 1 for n in others) or len(ounits) != len(e.out_units):
            return None
        a = owner[0]
        pos = ounits - units[a][0]
        sign = -1.0 if eqn.primitive.name == "sub" else 1.0
        return (oinfo.view, a, pos, sign)

    # -- one equation
    def _eqn(self, eqn, vals, infos):
        name = eqn.primitive.name
        params = eqn.params
        if name in _SUBJAXPR:
            sub = params.get("jaxpr", params.get("call_jaxpr"))
            if isinstance(sub, jcore.ClosedJaxpr):
                return self._walk(sub.jaxpr, sub.consts, vals, infos)
            if isinstance(sub, jcore.Jaxpr):
                return self._walk(sub, [], vals, infos)
        bind_params = eqn.primitive.get_bind_params(params)
        subfuns: Sequence[Any] = ()
        if isinstance(bind_params, tuple):  # jax < 0.7 returned (subfuns, params)
            subfuns, bind_params = bind_params
        if self.replay is None:
            out = eqn.primitive.bind(*subfuns, *vals, **bind_params)
            outs = out if eqn.primitive.multiple_results else [out]
        else:
            outs = [v.aval for v in eqn.outvars]
        shapes = [_shape(o) for o in outs]
        handler = getattr(self, "_p_" + name, None)
        if name in _ELEMENTWISE:
            new = [self._elementwise(name, vals, infos, shapes[0]) for _ in outs]
        elif name in _REDUCE or name in ("argmax", "argmin", "cumsum", "cumprod", "cummax"):
            new = [self._reduce(params, infos[0], shapes[0], name)]
        elif name in _WINDOW:
            new = [self._window(params, infos[0], name)]
        elif handler is not None:
            new = handler(eqn, vals, infos, outs)
        else:
            new = None
        if new is None:
            anyd = any(i.anydep for i in infos)
            touched = [i for i in infos if i.lab and (i.anydep or i.view is None)]
            for i in infos:
                self.pin_all(i, f"unsupported operation '{name}'")
            if any(i.lab for i in infos) and (touched or anyd):
                self.unsupported.setdefault(name, "")
            new = [_Info(base=anyd) for _ in outs]
        for n in new:
            n.fromx = any(i.fromx for i in infos)
        return [(o, i) for o, i in zip(outs, new, strict=True)]

    def _elementwise(self, name, vals, infos, shape):
        out = _Info(base=any(i.base for i in infos))
        nd = len(shape)
        for a in range(nd):
            labs = []
            for v, i in zip(vals, infos, strict=True):
                if len(_shape(v)) == nd and a in i.lab and _shape(v)[a] == shape[a]:
                    labs.append(i.lab[a])
            if not labs:
                continue
            merged = labs[0].copy()
            for lab in labs[1:]:
                self.uf.union(merged, lab)
                merged = np.where(merged >= 0, merged, lab)
            for v, i in zip(vals, infos, strict=True):
                uniform = len(_shape(v)) < nd or _shape(v)[a] == 1
                if not uniform and a not in i.lab:
                    # A value varying along a channel axis that we cannot slice with it.
                    self.pin(merged, f"'{name}' with an untracked operand along a channel axis")
            out.lab[a] = merged
            deps = [i.dep[a] for i in infos if a in i.dep and i.dep[a].shape == (shape[a],)]
            if deps:
                out.dep[a] = np.logical_or.reduce(deps)
        for i in infos:
            for a, d in i.dep.items():
                if a not in out.dep and d.any():
                    out.base = True
        if name == "mul" and len(vals) == 2:
            self._zero_gate(vals, infos, out, shape)
        if name in ("convert_element_type", "copy", "copy_p", "reduce_precision"):
            out.view = infos[0].view
        return out

    def _zero_gate(self, vals, infos, out, shape):
        # x * 0 is constant whatever x is: lets a zeroed BatchNorm scale kill a channel.
        for k in (0, 1):
            g, gi, xi = vals[k], infos[k], infos[1 - k]
            if gi.fromx or len(out.lab) != 1 or len(_shape(g)) != len(shape):
                continue
            (a,) = out.lab.keys()
            if set(xi.dep) - {a} or _shape(g)[a] != shape[a]:
                continue
            others = tuple(b for b in range(len(shape)) if b != a)
            zero = _host(self._stat(lambda g, o=others: jnp.all(g == 0, axis=o), g))
            d = out.dep.get(a, np.zeros(shape[a], bool)) | out.base
            out.dep[a] = d & ~zero
            out.base = False

    def _reduce(self, params, info, shape, name):
        axes = params.get("axes", params.get("axis"))
        axes = (axes,) if isinstance(axes, int) else tuple(axes or ())
        out = _Info(base=info.base)
        keep = [a for a in range(len(shape) + len(axes)) if a not in axes]
        if name.startswith("cum"):
            keep = list(range(len(shape)))
        for a, u in info.lab.items():
            if a in axes:
                self.pin(u, f"'{name}' over a channel axis")
                out.base = out.base or bool(info.dep.get(a, np.zeros(1, bool)).any())
            elif a in keep:
                out.lab[keep.index(a)] = u
                if a in info.dep:
                    out.dep[keep.index(a)] = info.dep[a]
        return out

    def _window(self, params, info, name):
        dims, strides = params["window_dimensions"], params["window_strides"]
        pad = params["padding"]
        for a in info.lab:
            if dims[a] != 1 or strides[a] != 1 or tuple(pad[a]) != (0, 0):
                self.pin(info.lab[a], f"'{name}' across a channel axis")
                return None
        return _Info(lab=dict(info.lab), dep=dict(info.dep), base=info.base)

    def _p_transpose(self, eqn, vals, infos, outs):
        perm = eqn.params["permutation"]
        inv = {a: k for k, a in enumerate(perm)}
        i = infos[0]
        return [
            _Info(
                lab={inv[a]: u for a, u in i.lab.items()},
                dep={inv[a]: d for a, d in i.dep.items()},
                base=i.base,
            )
        ]

    def _p_squeeze(self, eqn, vals, infos, outs):
        dims = [d % len(_shape(vals[0])) for d in eqn.params["dimensions"]]
        keep = [a for a in range(len(_shape(vals[0]))) if a not in dims]
        i = infos[0]
        out = _Info(base=i.base, view=i.view)
        for a, u in i.lab.items():
            if a in dims:
                # A one-unit axis disappears; that unit can no longer be followed.
                self.pin(u, "squeeze of a channel axis")
                out.base = out.base or bool(i.dep.get(a, np.zeros(1, bool)).any())
            else:
                out.lab[keep.index(a)] = u
                if a in i.dep:
                    out.dep[keep.index(a)] = i.dep[a]
        return [out]

    def _p_broadcast_in_dim(self, eqn, vals, infos, outs):
        shape = eqn.params["shape"]
        bdims = eqn.params["broadcast_dimensions"]
        i = infos[0]
        out = _Info(base=i.base, view=i.view)
        for a, u in i.lab.items():
            b = bdims[a]
            if _shape(vals[0])[a] == shape[b]:
                out.lab[b] = u
                if a in i.dep:
                    out.dep[b] = i.dep[a]
            else:
                self.pin(u, "broadcast of a one-unit channel axis")
                out.base = out.base or bool(i.dep.get(a, np.zeros(1, bool)).any())
        return [out]

    def _p_reshape(self, eqn, vals, infos, outs):
        if eqn.params.get("dimensions") is not None:
            return None
        i = infos[0]
        src, dst = _shape(vals[0]), _shape(outs[0])
        out = _Info(base=i.base, view=i.view)
        for ins, outs_ax in _reshape_blocks(src, dst):
            labelled = [a for a in ins if a in i.lab]
            if not labelled:
                continue
            if len(labelled) > 1 or math.prod(src[a] for a in ins) > 10_000_000:
                for a in labelled:
                    self.pin(i.lab[a], "reshape mixing two channel axes")
                out.base = True
                continue
            (a,) = labelled
            bshape = [src[b] for b in ins]
            pos = np.broadcast_to(
                np.arange(src[a]).reshape([-1 if b == a else 1 for b in ins]), bshape
            ).reshape([dst[b] for b in outs_ax])
            placed = False
            for k, b in enumerate(outs_ax):
                moved = np.moveaxis(pos, k, -1).reshape(-1, dst[b])
                if dst[b] > 1 and (moved == moved[:1]).all():
                    out.lab[b] = i.lab[a][moved[0]]
                    if a in i.dep:
                        out.dep[b] = i.dep[a][moved[0]]
                    placed = True
                    break
            if not placed:
                if src[a] > 1 or not outs_ax:
                    self.pin(i.lab[a], "reshape splitting a channel axis")
                    out.base = out.base or a in i.dep
                else:
                    out.lab[outs_ax[-1]] = i.lab[a]
                    if a in i.dep:
                        out.dep[outs_ax[-1]] = i.dep[a]
        return [out]

    def _p_concatenate(self, eqn, vals, infos, outs):
        dim = eqn.params["dimension"]
        shape = _shape(outs[0])
        out = _Info(base=False)
        for a in range(len(shape)):
            if a == dim:
                continue
            labs = [i.lab[a] for i in infos if a in i.lab]
            if labs:
                merged = labs[0].copy()
                for lab in labs[1:]:
                    self.uf.union(merged, lab)
                    merged = np.where(merged >= 0, merged, lab)
                out.lab[a] = merged
        if any(set(i.dep) - {dim} for i in infos) or any(a != dim for a in out.lab):
            out.base = any(i.anydep for i in infos)
        if any(dim in i.lab for i in infos):
            parts, dparts = [], []
            for v, i in zip(vals, infos, strict=True):
                n = _shape(v)[dim]
                parts.append(i.lab.get(dim, np.full(n, -1)))
                dparts.append(i.dep.get(dim, np.zeros(n, bool)) | i.base)
            out.lab[dim] = np.concatenate(parts)
            out.dep[dim] = np.concatenate(dparts)
        else:
            out.base = any(i.anydep for i in infos)
        return [out]

    def _p_dot_general(self, eqn, vals, infos, outs):
        (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
        li, ri = infos
        data = [k for k in (0, 1) if infos[k].fromx]
        if len(data) == 1 and not lb and len(lc) == 1 and len(_shape(vals[1 - data[0]])) == 2:
            d = data[0]
            xc = (lc, rc)[d][0]
            kc = (lc, rc)[1 - d][0]
            return [self._edge(eqn, vals[d], infos[d], xc, vals[1 - d], infos[1 - d], kc, d)]
        return None

    def _p_conv_general_dilated(self, eqn, vals, infos, outs):
        p = eqn.params
        if p["feature_group_count"] != 1 or p["batch_group_count"] != 1:
            return None
        if not infos[0].fromx or infos[1].fromx:
            return None
        dn = p["dimension_numbers"]
        lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
        x, xi = vals[0], infos[0]
        if set(xi.lab) - {lhs_spec[1]} or set(xi.dep) - {lhs_spec[1]}:
            return None
        k, ki = vals[1], infos[1]
        if rhs_spec[1] not in ki.lab or rhs_spec[0] not in ki.lab:
            return None
        kshape = _shape(k)
        n_in, n_out = kshape[rhs_spec[1]], kshape[rhs_spec[0]]

        def prep(k):
            k = jnp.moveaxis(k, (rhs_spec[1], rhs_spec[0]), (-2, -1))
            return k.reshape(-1, n_in, n_out)

        padded = any(tuple(q) != (0, 0) for q in p["padding"]) or any(
            s != 1 for s in p["lhs_dilation"]
        )
        out_shape = _shape(outs[0])
        taps = math.prod(kshape) // (n_in * n_out)
        positions = math.prod(out_shape[a] for a in out_spec[2:])
        e = self._make_edge(
            eqn,
            x,
            xi,
            lhs_spec[1],
            k,
            prep,
            ki.lab[rhs_spec[1]],
            ki.lab[rhs_spec[0]],
            padded,
            2.0 * taps * positions,
        )
        return [self._edge_out(e, xi, out_spec[1], len(out_shape))]

    def _edge(self, eqn, x, xi, xc, k, ki, kc, d):
        ko = 1 - kc
        if kc not in ki.lab or ko not in ki.lab or set(xi.dep) - {xc}:
            return None
        positions = math.prod(_shape(x)) // (_shape(x)[xc] * max(_shape(x)[0], 1))
        e = self._make_edge(
            eqn,
            x,
            xi,
            xc,
            k,
            lambda k: (k if kc == 0 else k.T)[None],
            ki.lab[kc],
            ki.lab[ko],
            False,
            2.0 * positions,
        )
        nd = len(_shape(x)) - 1 + 1
        # dot_general puts lhs free axes first, then rhs free axes.
        free = [a for a in range(len(_shape(x))) if a != xc]
        out_axis = len(free) if d == 0 else 0
        out = self._edge_out(e, _Info(), out_axis, nd)
        for n, a in enumerate(free):
            if a in xi.lab:
                self.pin(xi.lab[a], "dense layer applied along a second channel axis")
            del n
        return out

    def _make_edge(self, eqn, x, xi, xc, k, prep, in_units, out_units, padded, flops):
        if xc in xi.lab:
            self.uf.union(xi.lab[xc], in_units)
        n_in = len(in_units)
        const, uniform, zero, nz, ksum = self._stat(
            lambda x, k: _edge_stats(jnp.moveaxis(x, xc, -1).reshape(-1, n_in), prep(k)), x, k
        )
        uniform = _host(uniform)
        in_dep = xi.dep.get(xc, np.zeros(n_in, bool)) | xi.base
        e = _Edge(
            name=str(eqn.primitive.name),
            in_units=in_units,
            out_units=out_units,
            kernel=ksum,
            nz=nz,
            const=const,
            in_dep=_host(in_dep),
            uniform=uniform,
            is_zero=uniform & _host(zero),
            padded=padded,
            flops_per_pair=flops,
            out_var=eqn.outvars[0],
        )
        self.edges.append(e)
        return e

    def _edge_out(self, e: _Edge, xi: _Info, axis: int, ndim: int) -> _Info:
        dep_in = e.in_dep.astype(np.float32)
        if isinstance(e.nz, np.ndarray):  # recording pass: placeholders only
            dep_out = (dep_in @ e.nz) > 0
        else:
            dep_out = _host(_reach(dep_in, e.nz))
        return _Info(lab={axis: e.out_units}, dep={axis: dep_out}, base=False)


def _shape(v) -> tuple[int, ...]:
    s = getattr(v, "shape", None)
    return tuple(s) if s is not None else np.shape(v)


def _host(x: Any) -> np.ndarray:
    """Explicit device-to-host copy of a per-unit vector or scalar.

    Only these small decision inputs ever leave the accelerator; weights, kernels and
    ``(in, out)`` patterns stay where the parameters live. The check keeps it that way.
    """
    if np.ndim(x) > 1:
        raise AssertionError(f"compaction tried to copy a {np.shape(x)} array to the host")
    return np.asarray(jax.device_get(x))


def _edge_stats(xm: jax.Array, kernel: jax.Array):
    const = xm[0]
    uniform = jnp.all(jnp.abs(xm - const) <= 1e-6 * (1.0 + jnp.abs(const)), axis=0)
    nz = jnp.any(kernel != 0, axis=0).astype(jnp.float32)
    return const, uniform, const == 0, nz, jnp.sum(kernel, axis=0)


# Small per-unit products with the (in, out) nonzero pattern, run where it lives. Jitted
# so that each shape costs one compilation instead of one per eager operation.
@jax.jit
def _reach(dep_in: jax.Array, nz: jax.Array) -> jax.Array:
    """Output units reached from the flagged input units."""
    return (dep_in.astype(jnp.float32) @ nz) > 0


@jax.jit
def _alive_rows(nz: jax.Array, kept_out: jax.Array) -> jax.Array:
    """Input units with a nonzero weight to some kept output unit."""
    return (nz @ kept_out.astype(jnp.float32)) > 0


def _reshape_blocks(src: Sequence[int], dst: Sequence[int]):
    """Split a reshape into independent blocks of (source axes, destination axes)."""
    blocks, i, j = [], 0, 0
    while i < len(src) or j < len(dst):
        i0, j0, pa, pb = i, j, 1, 1
        if i < len(src):
            pa, i = src[i], i + 1
        if j < len(dst):
            pb, j = dst[j], j + 1
        while pa != pb:
            if pa < pb and i < len(src):
                pa, i = pa * src[i], i + 1
            elif j < len(dst):
                pb, j = pb * dst[j], j + 1
            else:
                pa, i = pa * src[i], i + 1
        # Trailing unit axes belong to this block.
        while i < len(src) and src[i] == 1 and (j >= len(dst) or dst[j] != 1):
            i += 1
        while j < len(dst) and dst[j] == 1 and (i >= len(src) or src[i] != 1):
            j += 1
        blocks.append((list(range(i0, i)), list(range(j0, j))))
    return blocks


# ----------------------------------------------------------------------------- declared structure


class Link(NamedTuple):
    """One connection declared through the ``structure=`` argument of :func:`compact`.

    ``dst`` reads the output units of ``src``: the last axis of ``src``'s kernel (and
    its bias), passed per unit through ``act`` and, with ``block > 1``, flattened
    channels-last (NHWC ``reshape``), so input ``i`` of ``dst`` is unit ``i % n`` of
    ``src``. Paths are module paths as in :attr:`CompactionReport.widths` (``"fc1"``,
    ``"block1/conv"``). A unit is then removed when all of ``dst``'s weights for it are
    zero, or when all of ``src``'s incoming weights are zero: it outputs the constant
    ``act(bias)``, which is folded into ``dst``'s bias. ``act`` must be what the model
    computes per unit between the two layers; ``None`` means the identity. Whatever
    lies between them must act per unit and hold no parameters of its own (a BatchNorm
    there is not covered). A wrong declaration is caught by the output check, which
    raises ``RuntimeError`` and leaves the model unchanged.
    """

    src: str
    dst: str
    block: int = 1
    act: Callable[[jax.Array], jax.Array] | None = None


StructureSpec = Sequence[Link | tuple[Any, ...]]


def _find_leaf(names: Sequence[tuple[str, ...]], module: str, leaf: str) -> int | None:
    parts = (*(p for p in module.split("/") if p), leaf)
    # Exact path first (a Linen collection name such as ``params`` may precede it).
    hits = [i for i, n in enumerate(names) if n == parts or n[1:] == parts]
    if not hits:
        hits = [i for i, n in enumerate(names) if n[-len(parts) :] == parts]
    if len(hits) > 1:
        found = ", ".join("/".join(names[i]) for i in hits)
        raise ValueError(f"structure: '{module}' is ambiguous ({found}); give its full path")
    return hits[0] if hits else None


def _link_arrays(ksrc, bias, kdst, n: int, act):
    # Runs where the parameters live; only per-unit vectors (dep, const == 0) are copied
    # to the host afterwards.
    dep = jnp.any(ksrc != 0, axis=tuple(range(ksrc.ndim - 1)))
    n_in, n_out = kdst.shape[-2], kdst.shape[-1]
    taps = kdst.reshape(-1, n_in, n_out)  # HWIO / (in, out): input axis is -2
    unit = jnp.arange(n_in) % n
    const = (act(bias) if act is not None else bias)[unit]
    nz = jnp.any(taps != 0, axis=0).astype(jnp.float32)
    return dep, const, const == 0, nz, jnp.sum(taps, axis=0)


def _apply_structure(w: _Walker, leaves, names, structure: StructureSpec) -> None:
    """Merge the declared links into what the tracer found, replacing it for those units."""
    declared = []
    for spec in structure:
        link = spec if isinstance(spec, Link) else Link(*spec)
        where = f"structure link {link.src!r} -> {link.dst!r}"
        ks, kd = _find_leaf(names, link.src, "kernel"), _find_leaf(names, link.dst, "kernel")
        if ks is None or kd is None:
            missing = link.src if ks is None else link.dst
            raise ValueError(f"{where}: no parameter '{missing}/kernel'")
        bs, bd = _find_leaf(names, link.src, "bias"), _find_leaf(names, link.dst, "bias")
        n = _shape(leaves[ks])[-1]
        dshape = _shape(leaves[kd])
        if link.block < 1 or len(dshape) < 2 or dshape[-2] != n * link.block:
            raise ValueError(
                f"{where}: '{link.dst}/kernel' has shape {dshape}; its input axis (-2) "
                f"must be {n} units x block {link.block} = {n * link.block}"
            )
        if bs is not None and _shape(leaves[bs]) != (n,):
            raise ValueError(f"{where}: '{link.src}/bias' should have shape ({n},)")
        src_units = w.leaf_units[ks][-1]
        dst_in, dst_out = w.leaf_units[kd][-2], w.leaf_units[kd][-1]
        unit = np.arange(len(dst_in)) % n
        w.uf.union(dst_in, src_units[unit])
        if bs is not None:
            w.uf.union(w.leaf_units[bs][0], src_units)
        declared.append(src_units)
        bias = leaves[bs] if bs is not None else jnp.zeros(n, jnp.result_type(leaves[ks]))
        dep, const, zero, nz, ksum = jax.jit(_link_arrays, static_argnums=(3, 4))(
            leaves[ks], bias, leaves[kd], n, link.act
        )
        in_dep = _host(dep)[unit]
        is_zero = ~in_dep & _host(zero)
        uniform = np.ones(len(dst_in), bool)
        # The tracer's own record of this layer saw an input it could not label (hence
        # the link): keep its kernel, padding and bias target, trust the declaration.
        traced = [e for e in w.edges if np.array_equal(e.in_units, dst_in)]
        for e in traced:
            e.in_dep, e.const, e.uniform, e.is_zero = in_dep, const, uniform, is_zero
        if not traced:
            target = None
            if bd is not None and _shape(leaves[bd]) == (dshape[-1],):
                target = (bd, 0, np.arange(dshape[-1]), 1.0)
            taps = math.prod(dshape[:-2])
            w.edges.append(
                _Edge(
                    link.dst,
                    dst_in,
                    dst_out,
                    ksum,
                    nz,
                    const,
                    in_dep,
                    uniform,
                    is_zero,
                    False,
                    2.0 * taps,
                    None,
                    target,
                )
            )
    if not declared:
        return
    w.declared = np.concatenate([w.declared, *declared])
    roots = w.uf.roots()
    lifted = np.unique(roots[w.declared])
    keep_reasons = ("model output", "inputs kept (prune_inputs=False)")
    pins = []
    for units, reason in w.pins:
        if reason not in keep_reasons:
            units = units[~np.isin(roots[units], lifted)]
        if units.size:
            pins.append((units, reason))
    w.pins = pins


# ----------------------------------------------------------------------------- decisions


def _decide(w: _Walker) -> np.ndarray:
    """Per-unit keep mask at the fixed point of the removal rules."""
    roots = w.uf.roots()
    n = len(roots)
    eligible = np.zeros(n, bool)
    for e in w.edges:
        eligible[roots[e.out_units]] = True
    eligible[roots[w.input_units]] = True
    eligible[roots[w.declared]] = True
    pinned = np.zeros(n, bool)
    for units, _ in w.pins:
        pinned[roots[units]] = True
    candidate = eligible & ~pinned
    removed = np.zeros(n, bool)
    while True:
        bad = np.zeros(n, bool)
        for e in w.edges:
            row_alive = _host(_alive_rows(e.nz, ~removed[roots[e.out_units]]))
            foldable = e.target is not None and not e.padded
            const = ~e.in_dep & e.uniform & (e.is_zero | foldable)
            bad[roots[e.in_units[row_alive & ~const]]] = True
        new = candidate & ~bad
        if np.array_equal(new, removed):
            return ~removed[roots]
        removed = new


def _exact_matmuls(fn: Callable) -> Callable:
    """Runs ``fn`` with float32 matrix products and convolutions at full precision.

    On GPUs the default precision rounds float32 operands to TF32 (about 1e-3 relative),
    and differently for the original and the smaller shapes: that would perturb the
    folded constants and fail the verification of an exact compaction.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return wrapped


@_exact_matmuls
def _fold_and_slice(w: _Walker, leaves: list[jax.Array], keep: np.ndarray):
    """Fold removed constant channels into their targets, then gather kept positions."""
    statics, arrays = [], []
    for e in w.edges:
        gone = ~keep[e.in_units] & ~e.in_dep & e.uniform & ~e.is_zero
        if gone.any() and e.target is not None:
            leaf, axis, pos, sign = e.target
            statics.append((leaf, axis, sign))
            arrays.append((pos.astype(np.int32), gone, e.const, e.kernel))
    selection = []
    for units in w.leaf_units:
        sel = {a: np.nonzero(keep[u])[0] for a, u in enumerate(units) if not keep[u].all()}
        selection.append(sel)
    index = [{a: i.astype(np.int32) for a, i in sel.items()} for sel in selection]

    def apply(leaves, arrays, index):
        leaves = list(leaves)
        for (leaf, axis, sign), (pos, gone, const, kernel) in zip(statics, arrays, strict=True):
            delta = jnp.where(gone, const, 0).astype(kernel.dtype) @ kernel
            idx: list[Any] = [0] * leaves[leaf].ndim
            idx[axis] = pos
            leaves[leaf] = (
                leaves[leaf].at[tuple(idx)].add((sign * delta).astype(leaves[leaf].dtype))
            )
        out = [_take(x, i) for x, i in zip(leaves, index, strict=True)]
        return [_keep_sharding(x, old) for x, old in zip(out, shardings, strict=True)]

    shardings = [getattr(x, "sharding", None) for x in leaves]
    # One compiled call on the parameters' devices; only index vectors leave the host.
    return jax.jit(apply)(list(leaves), arrays, index), selection


def _keep_sharding(x: jax.Array, old: Any) -> jax.Array:
    """Ask for the parameter's own layout, else XLA may replicate the gathered result.

    Mesh axes that no longer divide a shrunken dimension are dropped for that dimension.
    """
    if not isinstance(old, jax.sharding.NamedSharding) or len(old.spec) > x.ndim:
        return x
    spec = [*old.spec, *[None] * (x.ndim - len(old.spec))]
    for a, axes in enumerate(spec):
        if axes is None:
            continue
        size = math.prod(old.mesh.shape[n] for n in (axes if isinstance(axes, tuple) else (axes,)))
        if x.shape[a] % size:
            spec[a] = None
    new = jax.sharding.NamedSharding(old.mesh, jax.sharding.PartitionSpec(*spec))
    return jax.lax.with_sharding_constraint(x, new)


def _take(x: jax.Array, sel: Mapping[int, Any]) -> jax.Array:
    for a, idx in sel.items():
        x = jnp.take(x, jnp.asarray(idx, jnp.int32), axis=a)
    return x


# ----------------------------------------------------------------------------- report


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One module's sizes before and after compaction (FLOPs per example, x2 per MAC)."""

    name: str
    units_before: int
    units_after: int
    params_before: int
    params_after: int
    flops_before: float
    flops_after: float


@dataclasses.dataclass
class CompactionReport:
    """What :func:`compact` / :func:`compact_linen` removed, and how to follow suit.

    ``kept_inputs`` are the input features (last axis of the input) the compacted model
    takes: call it on ``x[..., report.kept_inputs]``. ``widths`` maps each module path to
    its new number of output units. ``notes`` lists channels kept because of operations
    the tracer could not follow. Use :meth:`apply_to` to compact optimizer state.
    """

    rows: list[LayerRow]
    kept_inputs: np.ndarray
    num_inputs: int
    widths: dict[str, int]
    notes: list[str]
    max_abs_error: float
    _selection: dict[tuple[str, ...], tuple[tuple[int, ...], dict[int, np.ndarray]]] = (
        dataclasses.field(repr=False, default_factory=dict)
    )

    @property
    def params_before(self) -> int:
        return sum(r.params_before for r in self.rows)

    @property
    def params_after(self) -> int:
        return sum(r.params_after for r in self.rows)

    @property
    def flops_before(self) -> float:
        return sum(r.flops_before for r in self.rows)

    @property
    def flops_after(self) -> float:
        return sum(r.flops_after for r in self.rows)

    @property
    def changed(self) -> bool:
        return bool(self._selection)

    def apply_to(self, tree: Any) -> Any:
        """Apply the same index selection to optimizer state that mirrors the params.

        A leaf is compacted when its path ends with a parameter's path (ignoring a Linen
        collection name such as ``params``) and it has that parameter's original shape,
        e.g. Adam's ``mu``/``nu`` or a momentum buffer; other leaves (step counts) are
        returned unchanged. This only selects indices: the constants of removed units
        that :func:`compact` folds into the next bias / BatchNorm mean are *not* added,
        which is right for moments but not for parameters. Take the parameters from the
        model returned by :func:`compact` / :func:`compact_linen`, never from here.
        """
        lookup = self._selection
        lengths = sorted({len(p) for p in lookup}, reverse=True)

        def one(path, leaf):
            if not hasattr(leaf, "shape"):
                return leaf
            names = _path_names(path)
            for n in lengths:
                hit = lookup.get(names[-n:]) if len(names) >= n else None
                if hit is not None and tuple(leaf.shape) == hit[0]:
                    return _take(leaf, hit[1])
            return leaf

        return jax.tree_util.tree_map_with_path(one, tree)

    def __str__(self) -> str:
        head = f"{'layer':<28}{'units':>14}{'params':>22}{'MFLOPs':>20}"
        lines = [head, "-" * len(head)]

        def fmt(r_name, ub, ua, pb, pa, fb, fa):
            units = f"{ub}->{ua}" if ub else ""
            flops = f"{fb / 1e6:.3f}->{fa / 1e6:.3f}" if fb else ""
            lines.append(f"{r_name:<28}{units:>14}{f'{pb}->{pa}':>22}{flops:>20}")

        fmt("input", self.num_inputs, len(self.kept_inputs), 0, 0, 0, 0)
        for r in self.rows:
            fmt(
                r.name,
                r.units_before,
                r.units_after,
                r.params_before,
                r.params_after,
                r.flops_before,
                r.flops_after,
            )
        lines.append("-" * len(head))
        fmt(
            "total",
            0,
            0,
            self.params_before,
            self.params_after,
            self.flops_before,
            self.flops_after,
        )
        if self.flops_after:
            lines.append(
                f"params x{self.params_before / max(self.params_after, 1):.2f} smaller, "
                f"FLOPs x{self.flops_before / self.flops_after:.2f} fewer; "
                f"max |output difference| {self.max_abs_error:.2e}"
            )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _path_names(path) -> tuple[str, ...]:
    names = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                names.append(str(getattr(k, attr)))
                break
        else:
            names.append(str(k))
    if names and names[-1] == "value":
        names.pop()
    return tuple(names)


def _pin_notes(w: _Walker, names) -> list[str]:
    """Human-readable reasons why removable-looking channels were kept."""
    notes: dict[str, set[str]] = {}
    roots = w.uf.roots()
    pinned_roots = {}
    for units, reason in w.pins:
        for r in np.unique(roots[units]).tolist():
            pinned_roots.setdefault(r, set()).add(reason)
    eligible = set(roots[w.input_units].tolist())
    for e in w.edges:
        eligible.update(roots[e.out_units].tolist())
    for i, units in enumerate(w.leaf_units):
        for u in units:
            for r in set(roots[u].tolist()) & eligible:
                for reason in pinned_roots.get(r, ()):
                    if reason not in ("model output", "inputs kept (prune_inputs=False)"):
                        notes.setdefault(reason, set()).add("/".join(names[i]))
    return [f"{k}: kept the channels of {', '.join(sorted(v))}" for k, v in notes.items()]


def _build_report(w, names, leaves, new_leaves, keep, selection, err, strip) -> CompactionReport:
    owner = np.full(len(keep), -1)
    for i, units in enumerate(w.leaf_units):
        for u in units:
            owner[u] = i
    module = ["/".join(n[strip:-1]) or n[-1] for n in names]
    rows: dict[str, dict[str, float]] = {}
    for i, name in enumerate(module):
        r = rows.setdefault(name, dict.fromkeys(("ub", "ua", "pb", "pa", "fb", "fa"), 0))
        r["pb"] += int(np.size(leaves[i]))
        r["pa"] += int(np.size(new_leaves[i]))
        if np.ndim(leaves[i]) == 1 and not r["ub"]:
            r["ub"], r["ua"] = np.size(leaves[i]), np.size(new_leaves[i])
    for e in w.edges:
        name = module[owner[e.out_units[0]]] if len(e.out_units) else e.name
        r = rows.setdefault(name, dict.fromkeys(("ub", "ua", "pb", "pa", "fb", "fa"), 0))
        kin, kout = keep[e.in_units].sum(), keep[e.out_units].sum()
        r["ub"], r["ua"] = len(e.out_units), int(kout)
        r["fb"] += e.flops_per_pair * len(e.in_units) * len(e.out_units)
        r["fa"] += e.flops_per_pair * kin * kout
    table = [
        LayerRow(k, int(v["ub"]), int(v["ua"]), int(v["pb"]), int(v["pa"]), v["fb"], v["fa"])
        for k, v in rows.items()
        if v["pb"] or v["fb"]
    ]
    note_list = _pin_notes(w, names)
    kept_inputs = np.nonzero(keep[w.input_units])[0]
    widths = {row.name: row.units_after for row in table if row.units_before}
    sel = {}
    for i, s in enumerate(selection):
        if s:
            sel[names[i]] = (tuple(_shape(leaves[i])), s)
            if strip:
                sel[names[i][strip:]] = sel[names[i]]
    return CompactionReport(table, kept_inputs, len(w.input_units), widths, note_list, err, sel)


# ----------------------------------------------------------------------------- entry points


@_exact_matmuls
def _analyse(fn, leaves, names, x, prune_inputs, strict, structure):
    closed = jax.make_jaxpr(fn)(list(leaves), x)
    leaf_names = ["/".join(n) for n in names]

    def record(leaves, x):
        w = _Walker(leaf_names)
        w.run(closed, leaves, x, prune_inputs)
        return w.recorded

    stats = jax.jit(record)(list(leaves), x)
    w = _Walker(leaf_names, replay=stats)
    w.run(
        closed,
        [jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v)) for v in leaves],
        jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)),
        prune_inputs,
    )
    if structure:
        _apply_structure(w, leaves, names, structure)
    notes = _pin_notes(w, names)
    if strict and notes:
        raise ValueError("compaction cannot follow these channels: " + "; ".join(notes))
    keep = _decide(w)
    return w, keep


@functools.partial(jax.jit, static_argnums=2)
def _random_inputs(x: jax.Array, key: jax.Array, n: int) -> list[jax.Array]:
    mean, std = jnp.mean(x), jnp.std(x) + 1.0
    return [
        (jax.random.normal(k, x.shape, x.dtype) * std + mean).astype(x.dtype)
        for k in jax.random.split(key, n)
    ]


@jax.jit
def _differences(a: Any, b: Any) -> jax.Array:
    """``(max |a - b|, max |a|)`` over all output leaves."""
    pairs = [
        (jnp.max(jnp.abs(la - lb)), jnp.max(jnp.abs(la)))
        for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        if la.size
    ]
    if not pairs:
        return jnp.zeros(2, jnp.float32)
    return jnp.max(jnp.asarray(pairs, jnp.float32), axis=0)


@_exact_matmuls
def _verify(run_old, run_new, x, kept_inputs, num_inputs, num_random, seed, rtol, atol, declared):
    x = jnp.asarray(x)
    xs = [x]
    if jnp.issubdtype(x.dtype, jnp.floating) and num_random > 0:
        xs += _random_inputs(x, jax.random.key(seed), num_random)
    index = None if len(kept_inputs) == num_inputs else jnp.asarray(kept_inputs)
    errs = []
    for xi in xs:
        xn = xi if index is None else _take(xi, {xi.ndim - 1: index})
        errs.append(_differences(run_old(xi), run_new(xn)))
    err, scale = (float(v) for v in np.max([_host(e) for e in errs], axis=0))
    if not err <= atol + rtol * scale:
        raise RuntimeError(
            f"compaction verification failed: outputs differ by {err:.3g} "
            f"(output scale {scale:.3g}); the original model is unchanged. "
            + (
                "Check the declared structure= links (layer paths, block, act)."
                if declared
                else "Please report this graph; pass strict=True to see which "
                "operations were not understood."
            )
        )
    return err


def compact(
    model,
    sample_input: jax.Array,
    *,
    prune_inputs: bool = True,
    strict: bool = False,
    structure: StructureSpec | None = None,
    num_random: int = 2,
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-5,
):
    """Remove dead units from an NNX module; returns ``(new_model, report)``.

    Units (dense outputs, conv filters, BatchNorm channels, input features) whose outgoing
    weights are all zero, or whose value does not depend on the input (incoming weights
    zero: the constant is folded into the next layer's bias or BatchNorm mean), are
    removed, repeatedly, until nothing changes. The structure is read from
    ``jax.make_jaxpr`` of the model in eval mode on ``sample_input``.

    Args:
      model: an ``nnx.Module``; it is not modified.
      sample_input: a batch the model accepts (only a few rows are needed).
      prune_inputs: also drop input features (last input axis) no kept unit reads;
        call the new model on ``x[..., report.kept_inputs]``.
      strict: raise ``ValueError`` naming the operations when the tracer meets one it
        cannot follow on a channel axis, instead of keeping those channels.
      structure: connections the tracer cannot read, given explicitly: a list of
        :class:`Link` or tuples ``(src, dst[, block[, act]])``, e.g.
        ``[("fc1", "fc2", 1, jax.nn.relu)]`` (``fc1``'s units feed ``fc2`` through
        ``relu``) or ``[("conv2", "fc1", 16)]`` (a 4x4xC map flattened into ``fc1``).
        For those units the declaration replaces what the tracer found (including
        the notes that kept them); the rest of the graph is still traced.
      num_random, seed, rtol, atol: the check run before returning: both models on
        the sample and ``num_random`` random inputs must agree to ``atol + rtol * scale``
        (``RuntimeError`` otherwise). The check, like the folding of constants, runs
        with full-precision float32 matrix products, so that TF32 rounding on GPUs is
        not taken for a difference.

    Returns:
      A new module with smaller arrays and updated ``in_features``/``out_features``/
      ``num_features``, and a :class:`CompactionReport`.
    """
    from flax import nnx

    graphdef, state = nnx.split(model)
    flat, treedef = jax.tree_util.tree_flatten_with_path(state)
    names = [_path_names(p) for p, _ in flat]
    leaves = [v for _, v in flat]
    eval_model = _nnx_eval(model)
    egraph, estate = nnx.split(eval_model)
    etree = jax.tree.structure(estate)

    def fn(ls, x):
        return nnx.merge(egraph, jax.tree.unflatten(etree, ls))(x)

    w, keep = _analyse(fn, leaves, names, sample_input, prune_inputs, strict, structure)
    new_leaves, selection = _fold_and_slice(w, leaves, keep)
    new_model = nnx.merge(graphdef, jax.tree.unflatten(treedef, new_leaves))
    _fix_nnx_sizes(new_model)
    ngraph, nstate = nnx.split(_nnx_eval(new_model))
    # Parameters are passed as arguments: closed over, jit would copy them to the host
    # and bake them into the program as constants.
    err = _verify(
        functools.partial(jax.jit(fn), list(leaves)),
        functools.partial(jax.jit(lambda s, x: nnx.merge(ngraph, s)(x)), nstate),
        sample_input,
        np.nonzero(keep[w.input_units])[0],
        len(w.input_units),
        num_random,
        seed,
        rtol,
        atol,
        bool(structure),
    )
    return new_model, _build_report(w, names, leaves, new_leaves, keep, selection, err, 0)


def _nnx_eval(model):
    from flax import nnx

    return nnx.view(model, raise_if_not_found=False, deterministic=True, use_running_average=True)


def _fix_nnx_sizes(model) -> None:
    from flax import nnx

    for _, m in nnx.iter_modules(model):
        if isinstance(m, nnx.Linear):
            m.in_features, m.out_features = m.kernel.shape
        elif isinstance(m, nnx.Conv):
            m.in_features = m.kernel.shape[-2] * m.feature_group_count
            m.out_features = m.kernel.shape[-1]
        elif hasattr(m, "num_features"):
            for attr in ("scale", "bias", "mean", "var"):
                v = getattr(m, attr, None)
                if isinstance(v, nnx.Variable) and v.get_value() is not None:
                    m.num_features = v.shape[-1]
                    break


def compact_linen(
    module,
    variables: Mapping[str, Any],
    sample_input: jax.Array,
    *,
    rebuild: Callable[[Any, Mapping[str, int]], Any] | None = None,
    apply_kwargs: Mapping[str, Any] | None = None,
    prune_inputs: bool = True,
    strict: bool = False,
    structure: StructureSpec | None = None,
    num_random: int = 2,
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-5,
):
    """Linen version of :func:`compact`; returns ``(new_module, new_variables, report)``.

    ``variables`` holds every collection (``params``, ``batch_stats``, ...). The module
    must compute in inference mode with ``module.apply(variables, x, **apply_kwargs)``
    (e.g. ``apply_kwargs={"train": False}``).

    Linen modules carry their widths as fields, so the smaller module is built by
    ``rebuild(module, report.widths)`` when given, else by the module's own
    ``compaction_rebuild(widths)`` method when it has one (the models in
    :mod:`sparse_optax.models` do: ``module.clone(hidden=...)``), else the module is
    reused unchanged (right when only input features were removed, or nothing).
    ``widths`` maps a submodule path such as ``"fc1"`` or ``"block1/conv"`` to its new
    number of output units. ``structure`` is as in :func:`compact`, with the same paths
    (without the ``params`` collection name).
    """
    kwargs = dict(apply_kwargs or {})
    flat, treedef = jax.tree_util.tree_flatten_with_path(dict(variables))
    names = [_path_names(p) for p, _ in flat]
    leaves = [v for _, v in flat]

    def fn(ls, x):
        return module.apply(jax.tree.unflatten(treedef, ls), x, **kwargs)

    w, keep = _analyse(fn, leaves, names, sample_input, prune_inputs, strict, structure)
    new_leaves, selection = _fold_and_slice(w, leaves, keep)
    new_vars = jax.tree.unflatten(treedef, new_leaves)
    report = _build_report(w, names, leaves, new_leaves, keep, selection, 0.0, 1)
    if rebuild is not None:
        new_module = rebuild(module, report.widths)
    elif hasattr(module, "compaction_rebuild"):
        new_module = module.compaction_rebuild(report.widths)
    else:
        new_module = module
    report.max_abs_error = _verify(
        functools.partial(jax.jit(fn), list(leaves)),
        functools.partial(jax.jit(lambda v, x: new_module.apply(v, x, **kwargs)), new_vars),
        sample_input,
        report.kept_inputs,
        report.num_inputs,
        num_random,
        seed,
        rtol,
        atol,
        bool(structure),
    )
    return new_module, new_vars, report
