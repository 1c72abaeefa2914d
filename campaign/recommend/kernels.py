"""The compiled inner loops of the recommender (pure; numba, without the GIL).

Two loops carry nearly all of the recommender's work, and both are the loop a
recommender engine writes in C++: a scratch row of the catalogue, filled through
neighbour lists, then a bounded heap for the best few.

:func:`top_neighbour_rows` (fitting): for each item, the dot products with every
item it shares a user (or an attribute) with, and its ``keep`` best neighbours.

:func:`rank_users` (recommending): :class:`campaign.recommend.hybrid.HybridRecommender`
defines the score (its ``score_block`` is the dense reference); this computes it for
a block of users, one user at a time:

1. walk the user's history through the item-CF and content neighbour lists,
   accumulating both similarities and remembering, per candidate, the history item
   that contributed most (the anchor of its reason);
2. add the popularity fallback candidates of the user's categories and of the shop,
   and the user's buy-again items;
3. score every candidate (blend scaled to a best item of 1, popularity prior,
   buy-again), dropping filtered ones;
4. take the greedy capped top-k: each category's best few in one pass, then the
   best ``k`` of those;
5. name each pick's largest score component, which becomes its reason.

Each candidate is touched a handful of times. The sparse-matrix formulation these
loops replace made about 25 array passes over every block's candidates and was
2-3x slower than ``implicit``'s C++ item-item recommender (docs/recommender.md).

Arithmetic follows the reference's float32 steps, so the two agree to rounding.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numba import config as numba_config
from numba import njit
from scipy import sparse

_F = TypeVar("_F", bound=Callable[..., Any])
# Where compiled code goes when numba finds no writable cache folder of its own.
FALLBACK_CACHE_DIR = Path(tempfile.gettempdir()) / "campaign-numba-cache"


def compiled(inline: bool = False) -> Callable[[_F], _F]:
    """``numba.njit`` without the GIL, its machine code cached on disk.

    numba caches next to this module, else in the user's cache folder, and refuses
    to load the module at all when neither is writable (a read-only install run by a
    user without a home); the code then goes to the temp folder instead.
    """
    options: dict[str, Any] = {"cache": True, "nogil": True}
    if inline:
        options["inline"] = "always"

    def decorate(function: _F) -> _F:
        try:
            return njit(**options)(function)  # type: ignore[no-any-return]
        except RuntimeError as exc:
            if "no locator available" not in str(exc):
                raise
            numba_config.CACHE_DIR = str(FALLBACK_CACHE_DIR)  # type: ignore[attr-defined]
            return njit(**options)(function)  # type: ignore[no-any-return]

    return decorate

# Reason kinds written per pick (see campaign.recommend.reasons for their wording).
KIND_BOUGHT = 0  # item-CF, anchored on a product the user bought
KIND_VIEWED = 1  # item-CF, anchored on a product the user only touched
KIND_SIMILAR_BOUGHT = 2  # content, anchored on a bought product
KIND_SIMILAR_VIEWED = 3  # content, anchored on a touched product
KIND_BUY_AGAIN = 4
KIND_POPULAR_IN = 5  # anchor = category code
KIND_POPULAR = 6

_NO_CAP = -1


@dataclass(frozen=True)
class RankedBlock:
    """The picks of a block of users, sorted by row then rank (ranks from 1).

    ``kinds`` and ``anchors`` say why each pick won: a ``KIND_*`` code and the product
    (item kinds) or category (``KIND_POPULAR_IN``) it refers to.
    """

    rows: np.ndarray
    cols: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    kinds: np.ndarray
    anchors: np.ndarray


def csr_arrays(matrix: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr, indices, data)`` as int64, int64 and float32: one dtype signature for
    the compiled loops (each new one costs a compilation), whatever scipy chose."""
    return (
        np.ascontiguousarray(matrix.indptr, dtype=np.int64),
        np.ascontiguousarray(matrix.indices, dtype=np.int64),
        np.ascontiguousarray(matrix.data, dtype=np.float32),
    )


@compiled(inline=True)
def _worse(score_a: float, col_a: int, score_b: float, col_b: int) -> bool:
    """True when (score_a, col_a) ranks after (score_b, col_b): lower score, or the
    same score and a higher column (ties go to the lower column)."""
    return score_a < score_b or (score_a == score_b and col_a > col_b)


@compiled()
def _sift_down(
    heap_s: np.ndarray, heap_c: np.ndarray, size: int, at: int, best_on_top: bool
) -> None:
    """Restore the heap below position ``at``: the best entry on top when
    ``best_on_top``, else the worst (a bounded heap of the best so far)."""
    while True:
        left = 2 * at + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and best_on_top != _worse(
            heap_s[right], heap_c[right], heap_s[left], heap_c[left]
        ):
            child = right
        if best_on_top != _worse(heap_s[child], heap_c[child], heap_s[at], heap_c[at]):
            heap_s[at], heap_s[child] = heap_s[child], heap_s[at]
            heap_c[at], heap_c[child] = heap_c[child], heap_c[at]
            at = child
        else:
            return


@compiled()
def _best_sorted(
    scores: np.ndarray, cols: np.ndarray, n: int, width: int,
    heap_s: np.ndarray, heap_c: np.ndarray,
) -> int:
    """The best ``width`` of the first ``n`` entries, best first, into heap_s/heap_c.

    A bounded heap with the worst kept entry on top: one comparison for each entry
    that cannot make the cut. Returns how many entries were kept.
    """
    size = 0
    for e in range(n):
        s = scores[e]
        c = cols[e]
        if size < width:
            at = size
            heap_s[at] = s
            heap_c[at] = c
            size += 1
            while at > 0:  # sift up
                parent = (at - 1) // 2
                if _worse(heap_s[at], heap_c[at], heap_s[parent], heap_c[parent]):
                    heap_s[at], heap_s[parent] = heap_s[parent], heap_s[at]
                    heap_c[at], heap_c[parent] = heap_c[parent], heap_c[at]
                    at = parent
                else:
                    break
        elif _worse(heap_s[0], heap_c[0], s, c):
            heap_s[0] = s
            heap_c[0] = c
            _sift_down(heap_s, heap_c, size, 0, False)
    # Heap sort in place: moving the worst to the back leaves the best first.
    end = size
    while end > 1:
        end -= 1
        heap_s[0], heap_s[end] = heap_s[end], heap_s[0]
        heap_c[0], heap_c[end] = heap_c[end], heap_c[0]
        _sift_down(heap_s, heap_c, end, 0, False)
    return size


@compiled()
def _select_capped(
    scores: np.ndarray, cols: np.ndarray, n: int, k: int, max_per_category: int,
    category_codes: np.ndarray, group_size: np.ndarray, group_s: np.ndarray,
    group_c: np.ndarray, touched: np.ndarray,
    heap_s: np.ndarray, heap_c: np.ndarray, out_c: np.ndarray, out_s: np.ndarray,
) -> int:
    """Greedy capped top-k of the first ``n`` (score, col) entries into out_c/out_s.

    Best first (ties: lower column), skipping items whose category already holds
    ``max_per_category`` picks (code -1 is never capped; -1 means no cap). That
    ranking is the best ``k`` among the best ``max_per_category`` of every category
    (and every uncategorised item), so one pass keeps each category's best few in
    a short sorted list, and a bounded heap takes the ``k`` best of those.

    Scratch, reset on return: ``group_size`` (one slot per category, zero on entry),
    ``group_s``/``group_c`` (categories × cap), ``touched`` (one slot per category).
    """
    if k <= 0 or n == 0:
        return 0
    if max_per_category == _NO_CAP:
        kept = _best_sorted(scores, cols, n, min(k, n), heap_s, heap_c)
    else:
        cap = max_per_category
        n_touched = 0
        n_loose = 0
        for e in range(n):
            s = scores[e]
            c = cols[e]
            code = category_codes[c]
            if code < 0:
                # Never capped: straight into the final round (front of scores/cols).
                scores[n_loose] = s
                cols[n_loose] = c
                n_loose += 1
                continue
            if cap == 0:
                continue
            size = group_size[code]
            if size == 0:
                touched[n_touched] = code
                n_touched += 1
            elif size == cap and not _worse(group_s[code, cap - 1], group_c[code, cap - 1], s, c):
                continue
            # Insert into the category's best-first list, dropping its last when full.
            at = size if size < cap else cap - 1
            while at > 0 and _worse(group_s[code, at - 1], group_c[code, at - 1], s, c):
                group_s[code, at] = group_s[code, at - 1]
                group_c[code, at] = group_c[code, at - 1]
                at -= 1
            group_s[code, at] = s
            group_c[code, at] = c
            if size < cap:
                group_size[code] = size + 1
        # The category winners join the uncategorised items (n_loose <= e, so the
        # front of scores/cols is free to hold them).
        total = n_loose
        for t in range(n_touched):
            code = touched[t]
            for slot in range(group_size[code]):
                scores[total] = group_s[code, slot]
                cols[total] = group_c[code, slot]
                total += 1
            group_size[code] = 0
        kept = _best_sorted(scores, cols, total, min(k, total), heap_s, heap_c)
    for e in range(kept):
        out_c[e] = heap_c[e]
        out_s[e] = heap_s[e]
    return kept


@compiled()
def select_capped(
    scores: np.ndarray, cols: np.ndarray, k: int, max_per_category: int,
    category_codes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One row's greedy capped top-k (see :func:`_select_capped`): ``(cols, scores)``.

    Entries must be positive; ``max_per_category`` -1 means no cap.
    """
    n = scores.shape[0]
    n_codes = 1
    for e in range(n):
        n_codes = max(n_codes, category_codes[cols[e]] + 1)
    cap = max(max_per_category, 1)
    group_size = np.zeros(n_codes, dtype=np.int64)
    group_s = np.empty((n_codes, cap), dtype=scores.dtype)
    group_c = np.empty((n_codes, cap), dtype=np.int64)
    touched = np.empty(n_codes, dtype=np.int64)
    heap_s = np.empty(n, dtype=scores.dtype)
    heap_c = np.empty(n, dtype=np.int64)
    out_c = np.empty(max(k, 0), dtype=np.int64)
    out_s = np.empty(max(k, 0), dtype=scores.dtype)
    picked = _select_capped(
        scores.copy(), cols.astype(np.int64), n, k, max_per_category, category_codes,
        group_size, group_s, group_c, touched, heap_s, heap_c, out_c, out_s,
    )
    return out_c[:picked], out_s[:picked]


@compiled()
def top_neighbour_rows(
    start: int, stop: int,
    left_ptr: np.ndarray, left_idx: np.ndarray, left_val: np.ndarray,
    right_ptr: np.ndarray, right_idx: np.ndarray, right_val: np.ndarray,
    extra: np.ndarray,
    sx_ptr: np.ndarray, sx_idx: np.ndarray, sx_val: np.ndarray,
    n_cols: int, keep: int, exclude_self: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``keep`` largest positive entries of rows ``start:stop`` of ``left @ right``.

    ``left`` (rows × features) and ``right`` (features × columns) are CSR arrays.
    ``extra`` (rows × e, float32; e may be 0) adds ``extra[i] · extra[j]`` to the
    pairs the sparse product links, and only to them; ``sx`` (a CSR of rows × a
    second set of features, sorted indices; it may have no entries) adds the sparse
    dot product ``sx[i] · sx[j]`` the same way, by merging the two short rows.
    ``exclude_self`` drops the diagonal. Ties go to the lower column.

    Returns:
        ``(counts, cols, values)``: entries kept per row and, per row of width
        ``keep``, their columns and values, best first.
    """
    n_rows = stop - start
    acc = np.zeros(n_cols, dtype=np.float32)
    seen = np.full(n_cols, -1, dtype=np.int64)
    candidates = np.empty(n_cols, dtype=np.int64)
    eligible_s = np.empty(n_cols, dtype=np.float32)
    eligible_c = np.empty(n_cols, dtype=np.int64)
    heap_s = np.empty(max(keep, 1), dtype=np.float32)
    heap_c = np.empty(max(keep, 1), dtype=np.int64)
    out_counts = np.zeros(n_rows, dtype=np.int64)
    out_cols = np.zeros((n_rows, keep), dtype=np.int64)
    out_values = np.zeros((n_rows, keep), dtype=np.float32)
    n_extra = extra.shape[1]
    for r in range(start, stop):
        n_candidates = 0
        for p in range(left_ptr[r], left_ptr[r + 1]):
            f = left_idx[p]
            a = left_val[p]
            for q in range(right_ptr[f], right_ptr[f + 1]):
                j = right_idx[q]
                if seen[j] != r:
                    seen[j] = r
                    acc[j] = 0.0
                    candidates[n_candidates] = j
                    n_candidates += 1
                acc[j] += a * right_val[q]
        n_eligible = 0
        for e in range(n_candidates):
            j = candidates[e]
            if exclude_self and j == r:
                continue
            value = acc[j]
            if n_extra:
                dot = np.float32(0.0)
                for x in range(n_extra):
                    dot += extra[r, x] * extra[j, x]
                value += dot
            a_at, a_end = sx_ptr[r], sx_ptr[r + 1]
            b_at, b_end = sx_ptr[j], sx_ptr[j + 1]
            while a_at < a_end and b_at < b_end:
                if sx_idx[a_at] == sx_idx[b_at]:
                    value += sx_val[a_at] * sx_val[b_at]
                    a_at += 1
                    b_at += 1
                elif sx_idx[a_at] < sx_idx[b_at]:
                    a_at += 1
                else:
                    b_at += 1
            if value > 0.0:
                eligible_s[n_eligible] = value
                eligible_c[n_eligible] = j
                n_eligible += 1
        kept = _best_sorted(eligible_s, eligible_c, n_eligible, min(keep, n_eligible),
                            heap_s, heap_c)
        out_counts[r - start] = kept
        for e in range(kept):
            out_cols[r - start, e] = heap_c[e]
            out_values[r - start, e] = heap_s[e]
    return out_counts, out_cols, out_values


# Per-item scratch records of rank_users: one float32 and one int32 row per item, so
# touching an item reads one or two cache lines instead of one per quantity.
_CF, _CONTENT, _CF_BEST, _CONTENT_BEST, _MIXED, _AGAIN = 0, 1, 2, 3, 4, 5
_SEEN, _CF_ANCHOR, _CONTENT_ANCHOR, _BLOCKED = 0, 1, 2, 3


@compiled(inline=True)
def _touch(
    j: int, stamp: int, n_candidates: int, candidates: np.ndarray,
    acc: np.ndarray, tag: np.ndarray,
) -> int:
    """Make item ``j`` a candidate of the user ``stamp`` (zeroing its records the
    first time); returns the new candidate count."""
    if tag[j, _SEEN] == stamp:
        return n_candidates
    tag[j, _SEEN] = stamp
    tag[j, _CF_ANCHOR] = -1
    tag[j, _CONTENT_ANCHOR] = -1
    for slot in range(acc.shape[1]):
        acc[j, slot] = 0.0
    candidates[n_candidates] = j
    return n_candidates + 1


@compiled(inline=True)
def _accumulate(
    i: int, share_i: float, ptr: np.ndarray, idx: np.ndarray, val: np.ndarray,
    total: int, best: int, anchor: int,
    stamp: int, n_candidates: int, candidates: np.ndarray, acc: np.ndarray, tag: np.ndarray,
) -> int:
    """Add history item ``i`` (weight ``share_i``) through one neighbour list into the
    records' ``total`` slot, keeping the largest single contribution in ``best`` and
    its history item in ``anchor`` (strict ">": the first, lowest-id item wins ties).
    Returns the new candidate count."""
    for q in range(ptr[i], ptr[i + 1]):
        j = idx[q]
        n_candidates = _touch(j, stamp, n_candidates, candidates, acc, tag)
        value = share_i * val[q]
        acc[j, total] += value
        if value > acc[j, best]:
            acc[j, best] = value
            tag[j, anchor] = i
    return n_candidates


@compiled()
def rank_users(
    profile_ptr: np.ndarray, profile_idx: np.ndarray, profile_val: np.ndarray,
    user_weight: np.ndarray,
    affinity_ptr: np.ndarray, affinity_idx: np.ndarray, affinity_val: np.ndarray,
    again_ptr: np.ndarray, again_idx: np.ndarray, again_val: np.ndarray,
    blocked_ptr: np.ndarray, blocked_idx: np.ndarray,
    bought_ptr: np.ndarray, bought_idx: np.ndarray,
    cf_ptr: np.ndarray, cf_idx: np.ndarray, cf_val: np.ndarray,
    content_ptr: np.ndarray, content_idx: np.ndarray, content_val: np.ndarray,
    item_confidence: np.ndarray, popularity: np.ndarray, category_codes: np.ndarray,
    allowed: np.ndarray, fallback_ptr: np.ndarray, fallback_idx: np.ndarray,
    popularity_weight: float, category_share: float, buy_again_weight: float,
    k: int, max_per_category: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-k of every user of a block; see the module docstring for the steps.

    Per-user inputs are CSR arrays (``*_ptr`` one longer than the block): the
    normalised profile (sorted indices), the category affinity, the buy-again scores
    (empty rows when repurchase is not allowed), the blocked items (bought inside the
    repurchase window) and the bought items (for the wording of reasons).
    ``user_weight`` is ``(1 - content_weight) * a_u``. Model inputs: the item-CF
    neighbours with item confidence folded in, the content neighbours, per-item
    confidence, popularity, category code (-1: none) and allowed flag, and the
    fallback candidates (row c: the top items of category c; the last row: of the
    shop). ``max_per_category`` -1 means no cap.

    Returns:
        ``(counts, cols, scores, kinds, anchors)``: picks per user and, per user row
        of width ``k``, the picked columns, scores, reason kinds and anchors.
    """
    n_users = user_weight.shape[0]
    n_items = popularity.shape[0]
    n_categories = fallback_ptr.shape[0] - 2
    f32 = np.float32
    pw = f32(popularity_weight)
    rest_share = f32(1.0) - f32(category_share)
    half_share = f32(category_share) * f32(0.5)
    again_weight = f32(buy_again_weight)

    acc = np.zeros((n_items, 8), dtype=np.float32)
    tag = np.zeros((n_items, 4), dtype=np.int32)
    bought = np.zeros(n_items, dtype=np.int32)
    candidates = np.empty(n_items, dtype=np.int64)
    eligible_s = np.empty(n_items, dtype=np.float32)
    eligible_c = np.empty(n_items, dtype=np.int64)
    heap_s = np.empty(n_items, dtype=np.float32)
    heap_c = np.empty(n_items, dtype=np.int64)
    user_affinity = np.zeros(n_categories + 1, dtype=np.float32)
    group_size = np.zeros(n_categories + 1, dtype=np.int64)
    group_s = np.empty((n_categories + 1, max(max_per_category, 1)), dtype=np.float32)
    group_c = np.empty((n_categories + 1, max(max_per_category, 1)), dtype=np.int64)
    touched = np.empty(n_categories + 1, dtype=np.int64)

    out_counts = np.zeros(n_users, dtype=np.int64)
    out_cols = np.zeros((n_users, k), dtype=np.int64)
    out_scores = np.zeros((n_users, k), dtype=np.float32)
    out_kinds = np.zeros((n_users, k), dtype=np.int8)
    out_anchors = np.zeros((n_users, k), dtype=np.int64)

    for u in range(n_users):
        stamp = u + 1
        weight = user_weight[u]
        n_candidates = 0

        # 1. History through the neighbour lists. Profile indices are sorted, so a
        # strict ">" keeps the lowest-id anchor among equal contributions.
        for p in range(profile_ptr[u], profile_ptr[u + 1]):
            i = profile_idx[p]
            share_i = profile_val[p]
            n_candidates = _accumulate(
                i, share_i, cf_ptr, cf_idx, cf_val, _CF, _CF_BEST, _CF_ANCHOR,
                stamp, n_candidates, candidates, acc, tag,
            )
            n_candidates = _accumulate(
                i, share_i, content_ptr, content_idx, content_val,
                _CONTENT, _CONTENT_BEST, _CONTENT_ANCHOR,
                stamp, n_candidates, candidates, acc, tag,
            )

        # The blend and its maximum (each user's best blended item scores 1).
        top = 0.0
        for e in range(n_candidates):
            j = candidates[e]
            value = acc[j, _CF] * weight + acc[j, _CONTENT] * (
                f32(1.0) - weight * item_confidence[j]
            )
            acc[j, _MIXED] = value
            if value > top:
                top = float(value)
        scale = 1.0 / top if top > 0.0 else 0.0

        # 2. Popularity fallback (the user's categories, then the whole shop), the
        # user's buy-again items, and the filters.
        for a in range(affinity_ptr[u], affinity_ptr[u + 1]):
            user_affinity[affinity_idx[a]] = affinity_val[a]
        for a in range(affinity_ptr[u], affinity_ptr[u + 1] + 1):
            row = n_categories
            if a < affinity_ptr[u + 1]:
                if affinity_val[a] <= 0.0:
                    continue
                row = affinity_idx[a]
            for q in range(fallback_ptr[row], fallback_ptr[row + 1]):
                n_candidates = _touch(
                    fallback_idx[q], stamp, n_candidates, candidates, acc, tag
                )
        for q in range(again_ptr[u], again_ptr[u + 1]):
            j = again_idx[q]
            n_candidates = _touch(j, stamp, n_candidates, candidates, acc, tag)
            acc[j, _AGAIN] = again_val[q]
        for q in range(blocked_ptr[u], blocked_ptr[u + 1]):
            tag[blocked_idx[q], _BLOCKED] = stamp
        for q in range(bought_ptr[u], bought_ptr[u + 1]):
            bought[bought_idx[q]] = stamp

        # 3. Scores of the candidates that may be shown.
        n_eligible = 0
        for e in range(n_candidates):
            j = candidates[e]
            if not allowed[j] or tag[j, _BLOCKED] == stamp:
                continue
            code = category_codes[j]
            pop = popularity[j]
            prior = rest_share * pop
            if code >= 0:
                prior += half_share * user_affinity[code] * (f32(1.0) + pop)
            score = f32(acc[j, _MIXED] * scale) + again_weight * acc[j, _AGAIN] + pw * prior
            if score > 0.0:
                eligible_s[n_eligible] = score
                eligible_c[n_eligible] = j
                n_eligible += 1

        # 4. The greedy capped top-k.
        picked = _select_capped(
            eligible_s, eligible_c, n_eligible, k, max_per_category, category_codes,
            group_size, group_s, group_c, touched, heap_s, heap_c, out_cols[u], out_scores[u],
        )
        out_counts[u] = picked

        # 5. The largest component of each pick names its reason (the first wins a
        # tie: item-CF, content, popularity, buy again).
        for r in range(picked):
            j = out_cols[u, r]
            code = category_codes[j]
            user_aff = float(user_affinity[code]) if code >= 0 else 0.0
            pop = float(popularity[j])
            confidence = float(weight) * float(item_confidence[j])
            parts_cf = float(weight) * float(acc[j, _CF]) * scale
            parts_content = (1.0 - confidence) * float(acc[j, _CONTENT]) * scale
            parts_popular = popularity_weight * (
                (1.0 - category_share) * pop + category_share * user_aff * 0.5 * (1.0 + pop)
            )
            parts_again = buy_again_weight * float(acc[j, _AGAIN])
            kind = KIND_VIEWED
            anchor = int(tag[j, _CF_ANCHOR])
            best = parts_cf
            if parts_content > best:
                best = parts_content
                kind = KIND_SIMILAR_VIEWED
                anchor = int(tag[j, _CONTENT_ANCHOR])
            if parts_popular > best:
                best = parts_popular
                kind = KIND_POPULAR_IN if user_aff > 0.0 else KIND_POPULAR
                anchor = code if user_aff > 0.0 else 0
            if parts_again > best:
                kind = KIND_BUY_AGAIN
                anchor = 0
            if kind == KIND_VIEWED or kind == KIND_SIMILAR_VIEWED:
                anchor = max(anchor, 0)
                if bought[anchor] == stamp:
                    kind = KIND_BOUGHT if kind == KIND_VIEWED else KIND_SIMILAR_BOUGHT
            out_kinds[u, r] = kind
            out_anchors[u, r] = anchor

        for a in range(affinity_ptr[u], affinity_ptr[u + 1]):
            user_affinity[affinity_idx[a]] = 0.0
    return out_counts, out_cols, out_scores, out_kinds, out_anchors
