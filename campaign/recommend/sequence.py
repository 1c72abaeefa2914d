"""A deep next-item model on each user's event sequence: the optional challenger (pure).

:class:`SequenceRecommender` learns what a user buys next from the order of their
events: a small SASRec (:mod:`campaign.recommend.sasrec`: item and position
embeddings, causal self-attention, the item embedding shared as the output) trained to
predict every next item of every user's sequence. It needs PyTorch, the optional
``[deep]`` extra (CPU is enough); the package never imports it unless a model is
fitted or used, so ``import campaign`` and the command line stay light.

Training (``fit``):

* each user's events are ordered by time (ties keep the input order) and cut, from the
  newest back, into windows of ``max_len + 1`` items; every item after the first of a
  window is a target once per epoch, predicted from the items before it in the window;
* the loss is the softmax cross-entropy of the target against the whole catalogue
  while it has at most ``full_softmax_items`` items, else against ``negatives`` items
  drawn per step with probability proportional to ``count ** negative_power`` (shared
  by the step's targets; each logit is corrected by minus the log of its expected
  draws, so the sampled softmax estimates the full one: uniform draws over a large
  catalogue are nearly all rare items, too easy to teach anything);
* Adam, ``max_epochs`` epochs or ``max_seconds`` of wall time, whichever ends first;
  ``progress(done, total)`` after every step, ``total = max_epochs * steps per epoch``.
  With a fixed ``seed`` and thread count, a run stopped by the epoch budget is
  reproducible to the bit; one stopped by the clock is not (it stops wherever it is).

Ranking (``top_k``): the hidden state after the user's last ``max_len`` events scores
every item (``h · E[j]``). Items never seen in training, and those ``exclude`` marks,
are never returned; a user without events gets the training popularity order. Why
(``anchors``): for each pick, the one of the user's newest events whose removal from
the sequence lowers the pick's score most: "follows your purchase of X" (the reason
kind ``follows`` of :mod:`campaign.recommend.reasons`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from campaign.common.errors import ModelError

if TYPE_CHECKING:
    from campaign.recommend.sasrec import SASRec

# Users scored per block in top_k: a block's scores are block x catalogue floats.
SCORE_BLOCK = 256


def _torch() -> Any:
    """The torch module, or a one-line error saying how to install it."""
    try:
        import torch
    except ImportError:
        raise ModelError(
            "the sequence model needs PyTorch: install the deep extra "
            "(pip install torch==2.13.0, then pip install -e '.[deep]')"
        ) from None
    return torch


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def _threads(torch: Any, wanted: int | None) -> Iterator[int]:
    """Run with ``wanted`` torch threads (default: every available core), then restore."""
    before = torch.get_num_threads()
    count = max(1, min(wanted or available_cores(), available_cores()))
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before)


def _indexes(name: str, values: np.ndarray, size: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"SequenceRecommender: {name} must be a 1-D integer array")
    if len(array) and (array.min() < 0 or array.max() >= size):
        raise ValueError(f"SequenceRecommender: {name} has values outside [0, {size})")
    return array.astype(np.int64, copy=False)


def _order_keys(timestamps: np.ndarray) -> np.ndarray:
    times = np.asarray(timestamps)
    if np.issubdtype(times.dtype, np.datetime64):
        return times.astype("datetime64[ns]").astype(np.int64)
    if not np.issubdtype(times.dtype, np.number):
        raise ValueError("SequenceRecommender: timestamps must be numbers or datetime64")
    return times


def _windows(indptr: np.ndarray, tokens: np.ndarray, width: int,
             per_user: int | None = None) -> np.ndarray:
    """Left-padded windows of ``width`` tokens, cut from each user's newest event back.

    Consecutive windows of one user share one token (the last input of the older is the
    first of the newer), so each event after a user's first is a target exactly once;
    ``per_user`` keeps only each user's newest windows.
    """
    rows: list[np.ndarray] = []
    for start, end in zip(indptr[:-1], indptr[1:], strict=True):
        stop, kept = int(end), 0
        while stop - start >= 2 and (per_user is None or kept < per_user):
            kept += 1
            first = max(int(start), stop - width)
            window = np.zeros(width, dtype=np.int64)
            window[width - (stop - first):] = tokens[first:stop]
            rows.append(window)
            stop = first + 1
    if not rows:
        return np.zeros((0, width), dtype=np.int64)
    return np.stack(rows)


class SequenceRecommender:
    """SASRec next-item recommender over users' time-ordered events (needs PyTorch).

    Parameters:
        dim: embedding size. layers, heads: transformer blocks and attention heads.
        max_len: events of context (the newest ``max_len`` when ranking).
        dropout: dropout rate while training.
        learning_rate, batch_size: Adam's step size and windows per step.
        max_epochs, max_seconds: the training budget (whichever ends first).
        negatives: sampled items per step once the catalogue exceeds ``full_softmax_items``.
        negative_power: draw negatives by training count to this power (0: uniform).
        windows_per_user: train on each user's newest windows only (None: all of them).
        seed: weights, window order, dropout and negatives.
        threads: torch threads (default: the cores this process may use).

    Fitted attributes: ``network_`` (the SASRec), ``epochs_`` (completed, a fraction when
    the clock stopped it), ``steps_``, ``seconds_``, ``stopped_by_`` ("epochs" or
    "time"), ``losses_`` (mean loss per epoch), ``item_counts_`` (training events per
    item), ``indptr_``/``history_`` (each user's time-ordered items, CSR-style).
    """

    def __init__(
        self,
        dim: int = 64,
        layers: int = 2,
        heads: int = 2,
        max_len: int = 50,
        dropout: float = 0.2,
        learning_rate: float = 5e-3,
        batch_size: int = 128,
        max_epochs: int = 10,
        max_seconds: float = 120.0,
        negatives: int = 1024,
        negative_power: float = 0.75,
        full_softmax_items: int = 5_000,
        windows_per_user: int | None = None,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        self.dim = dim
        self.layers = layers
        self.heads = heads
        self.max_len = max_len
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.max_seconds = max_seconds
        self.negatives = negatives
        self.negative_power = negative_power
        self.full_softmax_items = full_softmax_items
        self.windows_per_user = windows_per_user
        self.seed = seed
        self.threads = threads

    def _check(self) -> None:
        for name in ("dim", "layers", "heads", "max_len", "batch_size", "max_epochs",
                     "negatives"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SequenceRecommender: {name} must be at least 1")
        if self.dim % self.heads:
            raise ValueError("SequenceRecommender: dim must be a multiple of heads")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("SequenceRecommender: dropout must be in [0, 1)")
        if self.max_seconds <= 0:
            raise ValueError("SequenceRecommender: max_seconds must be positive")

    def fit(
        self,
        user_index: np.ndarray,
        item_index: np.ndarray,
        timestamps: np.ndarray,
        n_users: int,
        n_items: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> SequenceRecommender:
        """Learn next items from events (user row, item column, time), one per entry.

        ``timestamps`` only orders each user's events (numbers or datetime64).

        Raises:
            ValueError: arrays of different lengths, indexes out of range, bad settings.
            ModelError: PyTorch is missing, or no user has two events to learn from.
        """
        self._check()
        users = _indexes("user_index", user_index, n_users)
        items = _indexes("item_index", item_index, n_items)
        times = _order_keys(timestamps)
        if not len(users) == len(items) == len(times):
            raise ValueError("SequenceRecommender: user_index, item_index and timestamps "
                             "must have the same length")
        torch = _torch()
        from campaign.recommend.sasrec import SASRec

        order = np.lexsort((np.arange(len(users)), times, users))
        self.n_users_, self.n_items_ = int(n_users), int(n_items)
        self.history_ = items[order].astype(np.int32)
        self.indptr_ = np.searchsorted(users[order], np.arange(n_users + 1)).astype(np.int64)
        self.item_counts_ = np.bincount(items, minlength=n_items).astype(np.int64)
        windows = _windows(self.indptr_, self.history_.astype(np.int64) + 1, self.max_len + 1,
                           self.windows_per_user)
        if not len(windows):
            raise ModelError("the sequence model needs a user with at least two events")

        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        negatives = torch.Generator().manual_seed(self.seed)
        network = SASRec(n_items, self.dim, self.layers, self.heads, self.max_len, self.dropout)
        optimiser = torch.optim.Adam(network.parameters(), lr=self.learning_rate)
        draw = None  # the negatives' distribution over embedding rows (None: full softmax)
        if n_items > self.full_softmax_items:
            weights = np.r_[0.0, self.item_counts_.astype(np.float64) ** self.negative_power]
            weights[1:][self.item_counts_ == 0] = 0.0
            draw = torch.from_numpy(weights / weights.sum())
        per_epoch = math.ceil(len(windows) / self.batch_size)
        total = self.max_epochs * per_epoch
        self.losses_: list[float] = []
        self.stopped_by_ = "epochs"
        started = time.perf_counter()
        steps = 0
        network.train()
        with _threads(torch, self.threads):
            for _ in range(self.max_epochs):
                shuffled = windows[rng.permutation(len(windows))]
                epoch_loss = 0.0
                for step in range(per_epoch):
                    batch = torch.from_numpy(
                        shuffled[step * self.batch_size:(step + 1) * self.batch_size]
                    )
                    loss = self._loss(torch, network, batch, draw, negatives)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    steps += 1
                    epoch_loss += float(loss.detach())
                    if progress is not None:
                        progress(steps, total)
                    if time.perf_counter() - started > self.max_seconds:
                        self.stopped_by_ = "time"
                        break
                self.losses_.append(epoch_loss / (step + 1))
                if self.stopped_by_ == "time":
                    break
        network.eval()
        self.network_: SASRec = network
        self.steps_ = steps
        self.epochs_ = steps / per_epoch
        self.seconds_ = time.perf_counter() - started
        if progress is not None and steps < total:
            progress(total, total)  # the clock ended it: close the bar
        return self

    def _loss(self, torch: Any, network: SASRec, batch: Any, draw: Any,
              generator: Any) -> Any:
        """Cross-entropy of every target of the batch (full or sampled softmax)."""
        inputs, targets = batch[:, :-1], batch[:, 1:]
        hidden = network(inputs)
        keep = (targets != 0) & (inputs != 0)
        h, t = hidden[keep], targets[keep]
        weights = network.items.weight
        if draw is None:
            logits = h @ weights[1:].T
            return torch.nn.functional.cross_entropy(logits, t - 1)
        drawn = torch.multinomial(draw, self.negatives, replacement=True, generator=generator)
        expected = torch.log(draw * self.negatives).float()
        positive = (h * weights[t]).sum(-1, keepdim=True) - expected[t][:, None]
        negative = h @ weights[drawn].T - expected[drawn][None, :]
        negative = negative.masked_fill(drawn[None, :] == t[:, None], float("-inf"))
        logits = torch.cat([positive, negative], dim=1)
        return torch.nn.functional.cross_entropy(logits, torch.zeros_like(t))

    def _recent(self, rows: np.ndarray) -> np.ndarray:
        """Each row's newest ``max_len`` items as left-padded tokens (item + 1)."""
        out = np.zeros((len(rows), self.max_len), dtype=np.int64)
        for i, row in enumerate(rows):
            start, end = self.indptr_[row], self.indptr_[row + 1]
            recent = self.history_[max(start, end - self.max_len):end]
            if len(recent):
                out[i, self.max_len - len(recent):] = recent.astype(np.int64) + 1
        return out

    def scores(self, user_rows: np.ndarray) -> np.ndarray:
        """Dense scores (len(user_rows) x n_items, float32); unseen items are -inf."""
        rows = _indexes("user_rows", user_rows, self.n_users_)
        torch = _torch()
        out = np.empty((len(rows), self.n_items_), dtype=np.float32)
        popular = np.log1p(self.item_counts_).astype(np.float32)
        unseen = self.item_counts_ == 0
        with _threads(torch, self.threads), torch.inference_mode():
            items = self.network_.items.weight[1:]
            for start in range(0, len(rows), SCORE_BLOCK):
                block = rows[start:start + SCORE_BLOCK]
                hidden = self.network_.last_hidden(torch.from_numpy(self._recent(block)))
                out[start:start + len(block)] = (hidden @ items.T).numpy()
        empty = self.indptr_[rows + 1] == self.indptr_[rows]
        out[empty] = popular
        out[:, unseen] = -np.inf
        return out

    def top_k(
        self, user_rows: np.ndarray, k: int, exclude: sparse.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` items per user: (items n x k int64, scores n x k float32).

        ``exclude`` (rows aligned with ``user_rows``, columns = items) marks items never
        to return. A row with fewer than ``k`` eligible items is padded with item -1
        and score -inf.
        """
        rows = np.asarray(user_rows)
        if exclude is not None and exclude.shape != (len(rows), getattr(self, "n_items_", -1)):
            raise ValueError("SequenceRecommender.top_k: exclude must be "
                             "len(user_rows) x n_items")
        items = np.full((len(rows), k), -1, dtype=np.int64)
        values = np.full((len(rows), k), -np.inf, dtype=np.float32)
        if k < 1 or not len(rows):
            return items, values
        exclude = None if exclude is None else sparse.csr_matrix(exclude)
        keep = min(k, self.n_items_)
        for start in range(0, len(rows), SCORE_BLOCK):
            block = self.scores(rows[start:start + SCORE_BLOCK])
            if exclude is not None:
                marked = exclude[start:start + len(block)].tocoo()
                block[marked.row, marked.col] = -np.inf
            best = np.argpartition(-block, keep - 1, axis=1)[:, :keep]
            picked = np.take_along_axis(block, best, axis=1)
            ordering = np.lexsort((best, -picked), axis=1)  # ties: the lower item first
            best = np.take_along_axis(best, ordering, axis=1)
            picked = np.take_along_axis(picked, ordering, axis=1)
            eligible = np.isfinite(picked)
            items[start:start + len(block), :keep] = np.where(eligible, best, -1)
            values[start:start + len(block), :keep] = np.where(eligible, picked, -np.inf)
        return items, values

    def anchors(self, user_rows: np.ndarray, items: np.ndarray, window: int = 10) -> np.ndarray:
        """Why each pick: the recent event it follows most (an item index; -1: none).

        For ``items`` (n x k, as :meth:`top_k` returns them): each of the user's newest
        ``window`` events is left out in turn (the sequence closes up), and the event
        whose absence lowers the pick's score most is its anchor. -1 for padding and for
        users without events.
        """
        rows = _indexes("user_rows", user_rows, self.n_users_)
        picks = np.asarray(items, dtype=np.int64).reshape(len(rows), -1)
        out = np.full(picks.shape, -1, dtype=np.int64)
        torch = _torch()
        with _threads(torch, self.threads), torch.inference_mode():
            weights = self.network_.items.weight
            for start in range(0, len(rows), SCORE_BLOCK):
                block = rows[start:start + SCORE_BLOCK]
                chosen = picks[start:start + len(block)]
                tokens = self._recent(block)
                targets = weights[torch.from_numpy(np.maximum(chosen, 0) + 1)]  # (b, k, d)
                full = self._pick_scores(torch, targets, tokens)
                drops = np.full((len(block), window, chosen.shape[1]), -np.inf)
                for back in range(min(window, self.max_len)):
                    at = self.max_len - 1 - back
                    without = np.concatenate(
                        [np.zeros((len(block), 1), dtype=np.int64), tokens[:, :at],
                         tokens[:, at + 1:]], axis=1)
                    present = tokens[:, at] != 0
                    drops[present, back] = (full - self._pick_scores(torch, targets, without)
                                            )[present]
                best = np.argmax(drops, axis=1)  # (b, k): how far back the anchor is
                found = np.take_along_axis(drops, best[:, None, :], axis=1)[:, 0, :]
                anchor = np.take_along_axis(tokens, self.max_len - 1 - best, axis=1) - 1
                out[start:start + len(block)] = np.where(
                    np.isfinite(found) & (chosen >= 0), anchor, -1)
        return out

    def _pick_scores(self, torch: Any, targets: Any, sequences: np.ndarray) -> np.ndarray:
        """Each row's score of its own picks (``targets``: their embeddings, b x k x d)."""
        hidden = self.network_.last_hidden(torch.from_numpy(sequences))
        return np.asarray((targets * hidden[:, None, :]).sum(-1).numpy())
