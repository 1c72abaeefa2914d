"""The network of the sequence model: a small SASRec (self-attentive next-item model).

Kang and McAuley, "Self-Attentive Sequential Recommendation" (2018): item and position
embeddings, a few causal pre-norm transformer blocks, and the item embedding shared as
the output layer (the score of item j after a sequence is ``h · E[j]``). Only
:mod:`campaign.recommend.sequence` imports this module, and only once a model is fitted
or used, so PyTorch loads with the model and never with the package.

Row 0 of the item embedding is padding (item ``i`` of the catalogue is row ``i + 1``);
sequences are padded on the left, so the newest event is always the last position.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SASRec(nn.Module):
    """Causal self-attention over a user's item sequence.

    Parameters:
        n_items: catalogue size (the embedding has ``n_items + 1`` rows, row 0 = padding).
        dim: embedding and hidden size.
        layers: transformer blocks.
        heads: attention heads (``dim`` must be a multiple).
        max_len: longest input sequence (positions).
        dropout: dropout on embeddings, attention and feed-forward.
    """

    def __init__(
        self, n_items: int, dim: int, layers: int, heads: int, max_len: int, dropout: float
    ) -> None:
        super().__init__()
        self.dim = dim
        self.heads = heads
        self.items = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.positions = nn.Embedding(max_len, dim)
        self.dropout = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.items.weight, std=1.0 / math.sqrt(dim))
        with torch.no_grad():
            self.items.weight[0].zero_()

    def _mask(self, sequences: torch.Tensor) -> torch.Tensor:
        """Per batch row and head: position i sees positions <= i that are not padding.

        Every position always sees itself, so no row of the attention is empty (an
        all-masked row would give NaN for the padded positions).
        """
        length = sequences.shape[1]
        future = torch.ones(length, length, dtype=torch.bool, device=sequences.device).triu(1)
        padding = (sequences == 0)[:, None, :]  # (batch, 1, keys)
        itself = torch.eye(length, dtype=torch.bool, device=sequences.device)
        blocked = (future[None] | padding) & ~itself[None]
        return blocked.repeat_interleave(self.heads, dim=0)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """Hidden states (batch, length, dim) for left-padded item rows (batch, length)."""
        length = sequences.shape[1]
        where = torch.arange(length, device=sequences.device)
        x = self.items(sequences) * math.sqrt(self.dim) + self.positions(where)[None]
        x = self.dropout(x) * (sequences != 0)[..., None]
        x = self.blocks(x, mask=self._mask(sequences))
        return self.norm(x)

    def last_hidden(self, sequences: torch.Tensor) -> torch.Tensor:
        """The state after each sequence's newest event (batch, dim)."""
        return self.forward(sequences)[:, -1, :]
